/**
 * Recomputes an audit trail's chain from its records (never from a stored pointer). Pure.
 *
 * Each record's prev_sha256 must be the hash of an earlier record. A record whose link points
 * nowhere means the record before it was edited or removed. Two records linking to the same
 * predecessor are a fork: two runs appended at the same moment. A fork is not tampering — both
 * branches still verify — but it is reported, because it is also what an inserted record looks
 * like; docs/compliance.md says how to tell them apart.
 *
 * Beside the chain: a start record whose run never wrote its end record, once a later record shows
 * that run is over, is a problem too (find-unfinished-runs.ts) — a killed run's trace has a gap the
 * chain cannot see.
 */
import type { AuditRecord } from './audit-record.js';
import { sha256Hex } from './audit-record.js';
import { findUnfinishedRuns, type ParsedAuditRecord, type UnfinishedRun } from './find-unfinished-runs.js';

export interface StoredAuditRecord {
  key: string;
  body: Buffer;
}

export interface ChainProblem {
  key: string;
  kind: 'unreadable' | 'broken-link' | 'first-has-link' | 'unfinished-run';
  message: string;
}

export interface ChainFork {
  key: string;
  sharesPredecessorWith: string;
}

export interface ChainReport {
  records: number;
  problems: ChainProblem[];
  forks: ChainFork[];
  /** Start records with no end record whose run may still be going: reported, not problems. */
  open: OpenRun[];
  /** Hash of the newest record: pin it somewhere else to detect removal of the newest records. */
  headSha256: string | null;
}

export interface OpenRun {
  key: string;
  runId: string;
  message: string;
}

export function verifyAuditChain(stored: readonly StoredAuditRecord[]): ChainReport {
  const sorted = [...stored].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const seen = new Map<string, string>();
  const claimedBy = new Map<string, string>();
  const problems: ChainProblem[] = [];
  const forks: ChainFork[] = [];
  let head: string | null = null;
  /** The oldest record, when it starts the chain (no link): a later record without a link forks from it. */
  let genesis: string | undefined;
  const parsed: ParsedAuditRecord[] = [];
  sorted.forEach((item, i) => {
    const hash = sha256Hex(item.body);
    head = hash;
    let record: AuditRecord;
    try {
      record = JSON.parse(item.body.toString('utf8')) as AuditRecord;
      if (typeof record !== 'object' || record === null || !('prev_sha256' in record)) throw new Error('no prev_sha256');
    } catch (error) {
      problems.push({ key: item.key, kind: 'unreadable', message: `${item.key}: not an audit record (${error instanceof Error ? error.message : String(error)}): it was edited or replaced` });
      seen.set(hash, item.key);
      return;
    }
    parsed.push({ key: item.key, record });
    const prev = record.prev_sha256;
    if (i === 0) {
      if (prev !== null) {
        problems.push({ key: item.key, kind: 'first-has-link', message: `${item.key}: the oldest record links to ${prev}, which is not in the trail: earlier records were removed` });
      } else genesis = item.key;
    } else if (prev === null && genesis !== undefined) {
      // Two runs starting on an empty trail at once both begin a chain: a fork at the root, as
      // two runs appending at once fork anywhere else (it was reported as a removed record, on
      // every verify from then on; found in review).
      forks.push({ key: item.key, sharesPredecessorWith: genesis });
    } else if (prev === null || !seen.has(prev)) {
      const before = sorted[i - 1]!.key;
      problems.push({
        key: item.key,
        kind: 'broken-link',
        message: `${item.key}: its previous record (sha256 ${prev ?? 'null'}) is not in the trail: a record before it was edited or removed (the record just before it is ${before})`,
      });
    } else {
      const other = claimedBy.get(prev);
      if (other !== undefined) forks.push({ key: item.key, sharesPredecessorWith: other });
      else claimedBy.set(prev, item.key);
    }
    seen.set(hash, item.key);
  });
  const runs = findUnfinishedRuns(parsed);
  for (const u of runs.unfinished) {
    problems.push({
      key: u.key,
      kind: 'unfinished-run',
      message: `${u.key}: ${u.event} of run ${u.runId} has no end record, and ${u.overBecause ?? 'it is over'}: the run was interrupted; rows it deleted may be in no record (docs/compliance.md, "Interrupted runs")`,
    });
  }
  const open = runs.open.map((u: UnfinishedRun) => ({ key: u.key, runId: u.runId, message: `${u.key}: ${u.event} of run ${u.runId} has no end record yet: still running, or stopped with no later run yet` }));
  return { records: sorted.length, problems, forks, open, headSha256: head };
}
