/** Runs the real restore use case in-process with a silent logger, as the CLI does. */
import pino from 'pino';
import type { Config } from '../../src/config/schema.js';
import { runRestore, type RestoreOptions, type RestoreSummary } from '../../src/restore/restore-table.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

export async function restoreWith(config: Config, store: ObjectStore, extra: Partial<Omit<RestoreOptions, 'config' | 'store'>> & { table: string }): Promise<RestoreSummary> {
  return runRestore({
    config,
    store,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    runId: `restore-test-${Date.now()}`,
    range: {},
    conflict: 'fail',
    onCorrupt: 'fail',
    strictSchema: false,
    ignoreWatermark: false,
    dropIndexes: false,
    dryRun: false,
    ...extra,
  });
}
