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

function isEndOf(start: AuditRecord, rule: StartRule, r: AuditRecord): boolean {
  if (r.run_id !== start.run_id || !rule.ends.includes(r.event)) return false;
  if (r.event === 'ERROR') return true;
  return rule.perTable ? tableOf(r) === tableOf(start) : r.table === null;
}

/** `records` in key order (write order). Linear in the trail's length: verify reads whole trails. */
export function findUnfinishedRuns(records: readonly ParsedAuditRecord[]): { unfinished: UnfinishedRun[]; open: UnfinishedRun[] } {
  const byRun = new Map<string, { index: number; record: AuditRecord }[]>();
  const reconciledBy = new Map<string, { index: number; runId: string }>();
  records.forEach(({ record: r }, index) => {
    const list = byRun.get(r.run_id) ?? [];
    list.push({ index, record: r });
    byRun.set(r.run_id, list);
    const batchRun = r.event === 'ARCHIVE_RECONCILED' ? r.details?.batch_run_id : undefined;
    if (typeof batchRun === 'string' && batchRun !== r.run_id) reconciledBy.set(batchRun, { index, runId: r.run_id });
  });
  const starts = records.flatMap(({ key, record }, index) => {
    const rule = STARTS[record.event];
    if (rule === undefined) return [];
    const ended = (byRun.get(record.run_id) ?? []).some((e) => e.index > index && isEndOf(record, rule, e.record));
    return [{ key, index, record, rule, tables: tablesOf(record, rule), ended }];
  });
  // Per table, the latest ARCHIVE_START of a run that then archived that table successfully: an
  // unended archive start of that table before it is over.
  const startIndex = new Map<string, number>();
  for (const s of starts) if (s.record.event === 'ARCHIVE_START') startIndex.set(s.record.run_id, s.index);
  const lastSucceeded = new Map<string, { index: number; runId: string }>();
  for (const { record: r } of records) {
    const began = startIndex.get(r.run_id);
    if (r.event !== 'ARCHIVE_SUCCESS' || r.table === null || began === undefined) continue;
    const table = tableOf(r);
    if ((lastSucceeded.get(table)?.index ?? -1) < began) lastSucceeded.set(table, { index: began, runId: r.run_id });
  }
  const unfinished: UnfinishedRun[] = [];
  const open: UnfinishedRun[] = [];
  for (const s of starts) {
    if (s.ended) continue;
    const base = { key: s.key, runId: s.record.run_id, event: s.record.event };
    const confirmed = reconciledBy.get(s.record.run_id);
    const finishedLater = s.rule.provenByLaterSuccess ? s.tables.map((t) => lastSucceeded.get(t)).find((e) => e !== undefined && e.index > s.index) : undefined;
    if (confirmed !== undefined && confirmed.index > s.index) unfinished.push({ ...base, overBecause: `run ${confirmed.runId} later confirmed batches it had left in flight` });
    else if (finishedLater !== undefined) unfinished.push({ ...base, overBecause: `a later run (${finishedLater.runId}) started after it and archived one of its tables: it held the table's lock, which this run would still hold` });
    else open.push(base);
  }
  return { unfinished, open };
}
