/**
 * Start records with no end record for the same run (and, for a restore, the same table). Pure.
 *
 * A run killed mid-table leaves its ARCHIVE_START alone: the rows of the batches it committed are
 * gone from the database, and the chain is intact, so without this check the trace of a killed run
 * looks like a clean one. The trail cannot tell a killed run from one still running, so a start
 * without an end is a problem only once the trail proves the run is over:
 *
 * - a later run recorded batches of it (ARCHIVE_RECONCILED naming it in `details.batch_run_id`):
 *   reconciliation runs under the table's lock, which a live run would still hold; or
 * - a later archive run, started after it, archived one of its tables successfully (a table-level
 *   ARCHIVE_SUCCESS): only the holder of the table's lock gets that far, and a live run would
 *   still hold it. A later run that merely ended is no proof: one refused with LOCK_HELD by the
 *   live run, or stopped before it reached the table, ends too (found in review: a cron overlap
 *   made verify report the running archive as interrupted). ARCHIVE_START names its tables in
 *   `details.tables`; a start written before that (no tables) is only ever proven over by the
 *   first rule. A run of several tables may release one table's lock and still be busy with the
 *   next: a later run of that table then succeeding reports it while it is still going
 *   (docs/compliance.md says so). Restores take no lock of their source table (two may run at
 *   once), so nothing but an ERROR ends a restore's question: unended restores are only `open`.
 *
 * Otherwise the run is `open`: still running, or stopped with no later run yet. Reported, not a problem.
 */
import type { AuditRecord } from './audit-record.js';

export interface ParsedAuditRecord {
  key: string;
  record: AuditRecord;
}

export interface UnfinishedRun {
  /** The start record's key. */
  key: string;
  runId: string;
  event: string;
  /** What proves the run is over; undefined for an open run. */
  overBecause?: string;
}

interface StartRule {
  ends: readonly string[];
  /** Restores are per table: one run's restore of another table says nothing about this one. */
  perTable: boolean;
  /** Whether a later run's success on one of its tables proves it over (archive runs: the table lock). */
  provenByLaterSuccess: boolean;
}

/** The tables a start record is about, as identities; empty when it does not say (older records). */
function tablesOf(start: AuditRecord, rule: StartRule): string[] {
  if (rule.perTable) return [tableOf(start)];
  const listed = start.details?.tables;
  if (!Array.isArray(listed)) return [];
  return listed.flatMap((t: unknown) => {
    const x = t as { database?: unknown; schema?: unknown; table?: unknown } | null;
    return x !== null && typeof x === 'object' && typeof x.table === 'string' ? [JSON.stringify([x.database, x.schema, x.table])] : [];
  });
}

const STARTS: Record<string, StartRule> = {
  // The run-level end record has no table; ERROR ends a run that stopped as a whole.
  ARCHIVE_START: { ends: ['ARCHIVE_SUCCESS', 'ARCHIVE_FAILURE', 'ERROR'], perTable: false, provenByLaterSuccess: true },
  RESTORE_START: { ends: ['RESTORE_SUCCESS', 'RESTORE_FAILURE', 'ERROR'], perTable: true, provenByLaterSuccess: false },
};

const tableOf = (r: AuditRecord): string => JSON.stringify([r.database, r.schema, r.table]);

function isEndOf(start: PendingStart, r: AuditRecord): boolean {
  if (r.run_id !== start.runId || !start.rule.ends.includes(r.event)) return false;
  if (r.event === 'ERROR') return true;
  return start.rule.perTable ? tableOf(r) === start.table : r.table === null;
}

/** `records` in key order (write order): the whole trail at once (tests, small trails). */
export function findUnfinishedRuns(records: readonly ParsedAuditRecord[]): { unfinished: UnfinishedRun[]; open: UnfinishedRun[] } {
  const tracker = new UnfinishedRunTracker();
  for (const r of records) tracker.add(r);
  return tracker.result();
}

/** Whether a record of this event opens a run that must later show an end record. */
export function isStartEvent(event: unknown): boolean {
  return typeof event === 'string' && Object.hasOwn(STARTS, event);
}

interface PendingStart {
  key: string;
  index: number;
  runId: string;
  event: string;
  rule: StartRule;
  /** tableOf(the start record): what a per-table end must match. */
  table: string;
  tables: string[];
}

/**
 * The same answer as findUnfinishedRuns, fed one record at a time in key order, so `audit verify`
 * streams a trail of any length. It keeps only starts still waiting for their end, and per archive
 * run its latest start and the tables it archived: records are never held.
 */
export class UnfinishedRunTracker {
  private index = 0;
  /** Starts with no end record yet, by index: a Map keeps insertion order, which is trail order. */
  private readonly pending = new Map<number, PendingStart>();
  private readonly pendingByRun = new Map<string, PendingStart[]>();
  /**
   * Per archive run: its latest ARCHIVE_START (the whole trail's, even one after its successes, as a
   * reused run id would give) and the tables it archived successfully.
   */
  private readonly archiveRuns = new Map<string, { lastStart: number | undefined; succeeded: Set<string> }>();
  /** Per run named in an ARCHIVE_RECONCILED of another run: the latest such record. */
  private readonly reconciledBy = new Map<string, { index: number; runId: string }>();
  /** One string per table identity, so per-run sets share them instead of holding a copy per record. */
  private readonly tableNames = new Map<string, string>();

  add({ key, record: r }: ParsedAuditRecord): void {
    const index = this.index++;
    const waiting = this.pendingByRun.get(r.run_id);
    if (waiting !== undefined) {
      // Only records after a start can end it; this one is later than every start waiting.
      const still = waiting.filter((s) => !isEndOf(s, r));
      for (const s of waiting) if (!still.includes(s)) this.pending.delete(s.index);
      if (still.length === 0) this.pendingByRun.delete(r.run_id);
      else this.pendingByRun.set(r.run_id, still);
    }
    const batchRun = r.event === 'ARCHIVE_RECONCILED' ? r.details?.batch_run_id : undefined;
    if (typeof batchRun === 'string' && batchRun !== r.run_id) this.reconciledBy.set(batchRun, { index, runId: r.run_id });
    if (r.event === 'ARCHIVE_START') this.archiveRun(r.run_id).lastStart = index;
    if (r.event === 'ARCHIVE_SUCCESS' && r.table !== null) this.archiveRun(r.run_id).succeeded.add(this.intern(tableOf(r)));
    const rule = isStartEvent(r.event) ? STARTS[r.event] : undefined;
    if (rule === undefined) return;
    const start: PendingStart = { key, index, runId: r.run_id, event: r.event, rule, table: tableOf(r), tables: tablesOf(r, rule) };
    this.pending.set(index, start);
    const list = this.pendingByRun.get(r.run_id);
    if (list === undefined) this.pendingByRun.set(r.run_id, [start]);
    else list.push(start);
  }

  result(): { unfinished: UnfinishedRun[]; open: UnfinishedRun[] } {
    // Per table, the latest ARCHIVE_START of a run that archived that table successfully: an
    // unended archive start of that table before it is over.
    const lastSucceeded = new Map<string, { index: number; runId: string }>();
    for (const [runId, run] of this.archiveRuns) {
      const began = run.lastStart;
      if (began === undefined) continue;
      for (const table of run.succeeded) if ((lastSucceeded.get(table)?.index ?? -1) < began) lastSucceeded.set(table, { index: began, runId });
    }
    const unfinished: UnfinishedRun[] = [];
    const open: UnfinishedRun[] = [];
    for (const s of this.pending.values()) {
      const base = { key: s.key, runId: s.runId, event: s.event };
      const confirmed = this.reconciledBy.get(s.runId);
      const finishedLater = s.rule.provenByLaterSuccess ? s.tables.map((t) => lastSucceeded.get(t)).find((e) => e !== undefined && e.index > s.index) : undefined;
      if (confirmed !== undefined && confirmed.index > s.index) unfinished.push({ ...base, overBecause: `run ${confirmed.runId} later confirmed batches it had left in flight` });
      else if (finishedLater !== undefined) unfinished.push({ ...base, overBecause: `a later run (${finishedLater.runId}) started after it and archived one of its tables: it held the table's lock, which this run would still hold` });
      else open.push(base);
    }
    return { unfinished, open };
  }

  private archiveRun(runId: string): { lastStart: number | undefined; succeeded: Set<string> } {
    let run = this.archiveRuns.get(runId);
    if (run === undefined) this.archiveRuns.set(runId, (run = { lastStart: undefined, succeeded: new Set() }));
    return run;
  }

  private intern(name: string): string {
    const known = this.tableNames.get(name);
    if (known !== undefined) return known;
    this.tableNames.set(name, name);
    return name;
  }
}
