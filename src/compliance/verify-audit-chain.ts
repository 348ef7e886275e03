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
 *
 * Records are fed one at a time in key order (AuditChainVerifier), so a trail of any length is
 * checked in bounded memory: per record, only its hash and the key of the first record linking to
 * it (for fork reports) are kept; the bodies are not.
 */
import { createHash } from 'node:crypto';
import { compareKeys } from '../core/compare-keys.js';
import { AuditlogError } from '../core/errors.js';
import { isAuditRecordShape, type AuditRecord } from './audit-record.js';
import { isStartEvent, UnfinishedRunTracker, type UnfinishedRun } from './find-unfinished-runs.js';

export interface StoredAuditRecord {
  key: string;
  body: Buffer;
  /**
   * Copies of the record's fields kept beside it for querying (the database backend's columns):
   * the chain covers the record only, so an edit of the copies alone is caught by comparing them.
   */
  copies?: RecordCopies;
}

/** The database backend's columns beside a record (recorded_at is the database's clock, not a field of the record). */
export interface RecordCopies {
  event: string;
  run_id: string;
  database_name: string | null;
  schema_name: string | null;
  table_name: string | null;
  /** Of the record's bytes. */
  sha256: string;
}

export interface ChainProblem {
  key: string;
  kind: 'unreadable' | 'broken-link' | 'first-has-link' | 'unfinished-run' | 'columns-mismatch';
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

export interface AuditChainVerifierOptions {
  /**
   * Which records the report is about (`--since`, `--table`): given the record's parsed JSON, or
   * undefined when it is not JSON. The chain is still checked through every record; only problems,
   * forks and open runs at records in scope are reported, and `records` counts those.
   */
  inScope?: (parsed: unknown) => boolean;
  /**
   * The trail is written one record at a time in key order (the database backend: appends take
   * turns under a lock), so it never forks and each record must link to the one just before it.
   * A link to an earlier record, which elsewhere is a fork, is then a row inserted or copied by
   * hand (found by probing: a forged row linking to an old one passed verify as a fork, exit 0).
   */
  linear?: boolean;
}

/** The whole trail at once, in any order (tests, small trails); see AuditChainVerifier. */
export function verifyAuditChain(stored: readonly StoredAuditRecord[]): ChainReport {
  const verifier = new AuditChainVerifier();
  for (const item of [...stored].sort((a, b) => compareKeys(a.key, b.key))) verifier.add(item);
  return verifier.report();
}

const SHA256_HEX = /^[0-9a-f]{64}$/;

export class AuditChainVerifier {
  /**
   * Every record's hash (32 raw bytes as a latin1 string: half the size of hex) to the key of the
   * first readable record linking to it, or null while none has. Membership answers "is the link
   * in the trail"; the key names the other branch of a fork.
   */
  private readonly links = new Map<string, string | null>();
  private readonly runs = new UnfinishedRunTracker();
  private readonly problems: ChainProblem[] = [];
  private readonly forks: ChainFork[] = [];
  /** Start records out of scope: their runs' verdicts come at the end, when only keys are left. */
  private readonly outOfScopeStarts = new Set<string>();
  private count = 0;
  private inScopeCount = 0;
  private previousKey: string | undefined;
  private head: string | null = null;
  /** The previous record's hash (latin1, as in `links`), for linear trails. */
  private lastHash: string | undefined;
  /** The oldest record, when it starts the chain (no link): a later record without a link forks from it. */
  private genesis: string | undefined;

  constructor(private readonly options: AuditChainVerifierOptions = {}) {}

  /** The next record; keys must ascend (listing order), since a link is checked against the records before it. */
  add(item: StoredAuditRecord): void {
    const before = this.previousKey;
    if (before !== undefined && compareKeys(before, item.key) >= 0) {
      throw new AuditlogError('INTERNAL', `audit records reached the verifier out of key order (${item.key} after ${before}): the chain can only be checked in listing order`);
    }
    const first = this.count === 0;
    this.count++;
    this.previousKey = item.key;
    const digest = createHash('sha256').update(item.body).digest();
    this.head = digest.toString('hex');
    const hash = digest.toString('latin1');
    const previousHash = this.lastHash;
    this.lastHash = hash;
    let parsed: unknown;
    let record: AuditRecord | undefined;
    let unreadable: unknown;
    try {
      parsed = JSON.parse(item.body.toString('utf8'));
      record = parsed as AuditRecord;
      if (!isAuditRecordShape(parsed)) throw new Error('not the fields of one');
    } catch (error) {
      unreadable = error;
    }
    const inScope = this.options.inScope === undefined || this.options.inScope(parsed);
    if (inScope) this.inScopeCount++;
    const problem = (p: ChainProblem): void => void (inScope && this.problems.push(p));
    const fork = (f: ChainFork): void => void (inScope && this.forks.push(f));
    const mismatch = item.copies === undefined ? undefined : copiesMismatch(item.copies, parsed, this.head);
    if (mismatch !== undefined) {
      problem({ key: item.key, kind: 'columns-mismatch', message: `${item.key}: ${mismatch} with its record: the row was edited (queries on those columns no longer find what the record says)` });
    }
    if (unreadable !== undefined || record === undefined) {
      problem({ key: item.key, kind: 'unreadable', message: `${item.key}: not an audit record (${unreadable instanceof Error ? unreadable.message : String(unreadable)}): it was edited or replaced` });
      this.remember(hash);
      return;
    }
    this.runs.add({ key: item.key, record });
    if (!inScope && isStartEvent(record.event)) this.outOfScopeStarts.add(item.key);
    const prev = record.prev_sha256;
    const link = typeof prev === 'string' && SHA256_HEX.test(prev) ? Buffer.from(prev, 'hex').toString('latin1') : undefined;
    if (first) {
      if (prev !== null) {
        problem({ key: item.key, kind: 'first-has-link', message: `${item.key}: the oldest record links to ${prev}, which is not in the trail: earlier records were removed` });
      } else this.genesis = item.key;
    } else if (this.options.linear === true && link !== previousHash && (prev === null || (link !== undefined && this.links.has(link)))) {
      problem({
        key: item.key,
        kind: 'broken-link',
        message: `${item.key}: it links to ${prev === null ? 'no previous record, as only the oldest may' : `an earlier record (sha256 ${prev})`}, not to the record just before it (${before}): this trail is appended one record at a time and never forks, so a record was inserted, copied or moved by hand`,
      });
    } else if (prev === null && this.genesis !== undefined) {
      // Two runs starting on an empty trail at once both begin a chain: a fork at the root, as
      // two runs appending at once fork anywhere else (it was reported as a removed record, on
      // every verify from then on; found in review).
      fork({ key: item.key, sharesPredecessorWith: this.genesis });
    } else if (prev === null || link === undefined || !this.links.has(link)) {
      problem({
        key: item.key,
        kind: 'broken-link',
        message: `${item.key}: its previous record (sha256 ${prev ?? 'null'}) is not in the trail: a record before it was edited or removed (the record just before it is ${before})`,
      });
    } else {
      const other = this.links.get(link);
      if (other !== null && other !== undefined) fork({ key: item.key, sharesPredecessorWith: other });
      else this.links.set(link, ownCopy(item.key));
    }
    this.remember(hash);
  }

  report(): ChainReport {
    const problems = [...this.problems];
    const runs = this.runs.result();
    const reported = (u: UnfinishedRun): boolean => !this.outOfScopeStarts.has(u.key);
    for (const u of runs.unfinished.filter(reported)) {
      problems.push({
        key: u.key,
        kind: 'unfinished-run',
        message: `${u.key}: ${u.event} of run ${u.runId} has no end record, and ${u.overBecause ?? 'it is over'}: the run was interrupted; rows it deleted may be in no record (docs/compliance.md, "Interrupted runs")`,
      });
    }
    const open = runs.open.filter(reported).map((u) => ({ key: u.key, runId: u.runId, message: `${u.key}: ${u.event} of run ${u.runId} has no end record yet: still running, or stopped with no later run yet` }));
    return { records: this.inScopeCount, problems, forks: [...this.forks], open, headSha256: this.head };
  }

  /** Two records with the same bytes share a hash: the first one's claimant stays. */
  private remember(hash: string): void {
    if (!this.links.has(hash)) this.links.set(hash, null);
  }
}

/**
 * The copies that disagree with the record they copy (`parsed`, whose bytes hash to `sha256`), as
 * "its columns a, b disagree"; undefined when they all agree, or when the body is not a JSON object (the
 * chain reports that). Found by probing: a row's event, table_name and sha256 could be changed
 * and verify passed, though docs/compliance.md queries those columns.
 */
function copiesMismatch(copies: RecordCopies, parsed: unknown, sha256: string): string | undefined {
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const record = parsed as Partial<AuditRecord>;
  const wrong = [
    copies.sha256 !== sha256 ? 'sha256' : undefined,
    copies.event !== record.event ? 'event' : undefined,
    copies.run_id !== record.run_id ? 'run_id' : undefined,
    copies.database_name !== (record.database ?? null) ? 'database_name' : undefined,
    copies.schema_name !== (record.schema ?? null) ? 'schema_name' : undefined,
    copies.table_name !== (record.table ?? null) ? 'table_name' : undefined,
  ].filter((c) => c !== undefined);
  return wrong.length === 0 ? undefined : wrong.length === 1 ? `its column ${wrong[0]} disagrees` : `its columns ${wrong.join(', ')} disagree`;
}

/**
 * A key kept for the whole verify is copied: a listing's keys can be slices of its response text,
 * and one kept slice would keep that whole page in memory.
 */
function ownCopy(key: string): string {
  return Buffer.from(key, 'utf8').toString('utf8');
}
