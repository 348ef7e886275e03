/**
 * The end of every in-process resilience scenario: with the fault gone, rerun the archiver to
 * completion, let the independent checker judge the bucket and the table, and record the figures.
 */
import { expect } from 'vitest';
import type { Config } from '../../src/config/schema.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import { archiveWith } from '../helpers/archive-run.js';
import type { ArchiveFixture } from '../helpers/archive-fixture.js';
import { checkArchiveInvariant, type ExpectedRows, type InvariantReport, type TableRef } from '../helpers/invariant-checker.js';
import { recordScenario } from './figures.js';

export const events = { table: 'events' };

/** The fixture's store as the CLI builds it (retries, circuit breaker, rate limiter), straight to s3rver. */
export async function healthyRun(fx: ArchiveFixture, config: Config = fx.configFor([{ name: 'events', timestamp_column: 'happened_at' }])): ReturnType<typeof archiveWith> {
  return archiveWith(config, await createObjectStore(config));
}

/** What the checker sees right now (e.g. just after the fault), without judging it. */
export function checkNow(fx: ArchiveFixture, expected: ExpectedRows, table: TableRef = events): Promise<InvariantReport> {
  return checkArchiveInvariant({ db: fx.db, table, source: { s3: fx.s3cfg }, expected });
}

/**
 * I1 at the instant after the fault: nothing lost, nothing stale, nothing twice — and no row both
 * in the table and in a committed object (an object counts as committed once its marker is gone,
 * so a marker removed before the delete committed shows here, not only after the rerun).
 */
export function expectNothingLostYet(report: InvariantReport): void {
  const why = report.problems.join('\n');
  expect(report.rowsLost, why).toBe(0);
  expect(report.staleCopies, why).toBe(0);
  expect(report.rowsDuplicated, why).toBe(0);
  expect(report.unknownRows, why).toBe(0);
  expect(report.rowsInTableAndArchive, why).toBe(0);
}

export interface FinishOptions {
  scenario: string;
  injected: string;
  /** Rows that must be archived once the rerun is done (those past the retention, as left by the scenario). */
  archived: number;
  /** The table the scenario ran on (default events) and the config naming it. */
  table?: TableRef;
  config?: Config;
  invariant?: string;
}

export async function finishAndCheck(fx: ArchiveFixture, expected: ExpectedRows, o: FinishOptions): Promise<InvariantReport> {
  const rerun = await healthyRun(fx, o.config);
  expect(rerun.tables.map((t) => t.error ?? 'ok')).toEqual(rerun.tables.map(() => 'ok'));
  const report = await checkNow(fx, expected, o.table);
  expect(report.problems).toEqual([]);
  expect(report.rowsArchived).toBe(o.archived);
  await recordScenario(o.scenario, o.injected, report, o.invariant);
  return report;
}
