/**
 * What the storage-fault scenarios share (storage-faults.test.ts, conditional-writes.test.ts): a
 * table of old events to archive, and the archiver configured with its storage behind the HTTP
 * fault proxy, the store built as the CLI builds it.
 */
import type { Config } from '../../src/config/schema.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import { archiveWith } from '../helpers/archive-run.js';
import { eventsTable, type ArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable } from '../helpers/events-table.js';
import { expectRowsOf, type ExpectedRows } from '../helpers/invariant-checker.js';
import { events } from './finish-and-check.js';

export const ROWS = 50;
/** Retries in milliseconds, so that a fault outlasting them ends the table quickly. */
export const fastRetry = { max_attempts: 6, base_delay_ms: 1, max_delay_ms: 5 };

/** `rows` events, every one past the 10-day retention: all must end up archived. */
export async function seedOldEvents(fx: ArchiveFixture, rows = ROWS): Promise<ExpectedRows> {
  await createEventsTable(fx.db, { rows, stepMinutes: 20, endDaysAgo: 11 });
  return expectRowsOf(fx.db, events);
}

/** The fixture's config for the events table with its S3 endpoint at the proxy. */
export function configBehindProxy(fx: ArchiveFixture, proxyEndpoint: string, s3: Partial<NonNullable<Config['s3']>> = {}, defaults: Record<string, unknown> = {}): Config {
  const config = fx.configFor([eventsTable], defaults);
  config.s3 = { ...config.s3!, endpoint: proxyEndpoint, retry: fastRetry, ...s3 };
  return config;
}

export async function runThroughProxy(config: Config, extra: Parameters<typeof archiveWith>[2] = {}): ReturnType<typeof archiveWith> {
  return archiveWith(config, await createObjectStore(config), extra);
}
