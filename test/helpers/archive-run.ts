/** Runs the real archive use case in-process with a silent logger, as the CLI does. */
import pino from 'pino';
import { configSchema, type Config } from '../../src/config/schema.js';
import { runArchive, type RunArchiveOptions } from '../../src/archive/run-archive.js';
import type { RunSummary } from '../../src/archive/table-summary.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

export function buildConfig(raw: unknown): Config {
  return configSchema.parse(raw);
}

export async function archiveWith(
  config: Config,
  store: ObjectStore,
  extra: Partial<Omit<RunArchiveOptions, 'config' | 'store'>> = {},
): Promise<RunSummary> {
  return runArchive({
    config,
    store,
    logger: pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' }),
    runId: `test-${Date.now()}`,
    toolVersion: '0.0.0-test',
    ...extra,
  });
}
