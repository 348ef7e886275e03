/**
 * One audit record: what happened, to what, by whom, and the SHA-256 of the record before it in
 * the same trail, so an edited or removed record breaks the chain (`auditlog audit verify`).
 * Pure: building, serializing, hashing and naming records.
 */
import { createHash } from 'node:crypto';
import { STATE_PREFIX } from '../core/archive-layout.js';

export const AUDIT_EVENTS = [
  'ARCHIVE_START',
  'ARCHIVE_SUCCESS',
  'ARCHIVE_FAILURE',
  /**
   * Committed batches of a run, recorded before their pending markers are removed (a marker is the
   * only trace a later run finds of a run killed before its end record). The end record of the
   * same run and table lists these objects again.
   */
  'ARCHIVE_PROGRESS',
  /** Objects a run confirmed as committed by a batch whose own run never recorded them (it was killed, or its COMMIT was ambiguous). */
  'ARCHIVE_RECONCILED',
  'RESTORE_START',
  'RESTORE_SUCCESS',
  'RESTORE_FAILURE',
  'LEGAL_HOLD_SKIP',
  'POLICY_VIOLATION',
  'ERROR',
] as const;
export type AuditEvent = (typeof AUDIT_EVENTS)[number];

export const AUDIT_PREFIX = `${STATE_PREFIX}audit/`;
export const AUDIT_RECORD_VERSION = 1;

/** What a caller says about an event; the trail adds time, operator, sequence and the chain link. */
export interface AuditEntry {
  event: AuditEvent;
  runId: string;
  database?: string | null;
  schema?: string | null;
  table?: string | null;
  records?: number | null;
  bytes?: number | null;
  durationMs?: number | null;
  objectKeys?: string[];
  status: string;
  error?: { code: string; message: string } | null;
  details?: Record<string, unknown>;
}

export interface AuditRecord {
  version: number;
  at: string;
  event: AuditEvent;
  run_id: string;
  operator: string;
  database: string | null;
  schema: string | null;
  table: string | null;
  records: number | null;
  bytes: number | null;
  duration_ms: number | null;
  object_keys: string[];
  status: string;
  error: { code: string; message: string } | null;
  details: Record<string, unknown>;
  /** SHA-256 (hex) of the exact bytes of the previous record of this trail; null for the first. */
  prev_sha256: string | null;
}

export function buildAuditRecord(entry: AuditEntry, at: Date, operator: string, prevSha256: string | null): AuditRecord {
  return {
    version: AUDIT_RECORD_VERSION,
    at: at.toISOString(),
    event: entry.event,
    run_id: entry.runId,
    operator,
    database: entry.database ?? null,
    schema: entry.schema ?? null,
    table: entry.table ?? null,
    records: entry.records ?? null,
    bytes: entry.bytes ?? null,
    duration_ms: entry.durationMs ?? null,
    object_keys: entry.objectKeys ?? [],
    status: entry.status,
    error: entry.error ?? null,
    details: entry.details ?? {},
    prev_sha256: prevSha256,
  };
}

/** The stored bytes: the chain hashes these exact bytes, so they are written once and never re-serialized. */
export function serializeAuditRecord(record: AuditRecord): Buffer {
  return Buffer.from(JSON.stringify(record) + '\n', 'utf8');
}

/**
 * Whether a parsed body has the fields every record this tool writes has, with their types: what
 * `audit list` and `audit verify` both read as a record (they disagreed on `{"prev_sha256":…}`).
 */
export function isAuditRecordShape(value: unknown): value is AuditRecord {
  if (typeof value !== 'object' || value === null || !('prev_sha256' in value)) return false;
  const r = value as Record<string, unknown>;
  return (r.prev_sha256 === null || typeof r.prev_sha256 === 'string') && typeof r.at === 'string' && typeof r.event === 'string' && typeof r.run_id === 'string' && (r.error === null || (typeof r.error === 'object' && r.error !== undefined));
}

export function sha256Hex(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * `_auditlog/audit/YYYY/MM/DD/<yyyymmddThhmmssmmmZ>-<run id>-<seq>-<event>.json`: key order is
 * time order (to the millisecond, then the run's own sequence), and run id plus sequence make a
 * key no other writer produces, so a record is never written over. The trail passes the time to
 * name the record by (`record.at`, or later than it when the clock is behind the tail: see
 * StorageAuditTrail), so that key order is also write order.
 */
export function auditRecordKey(record: Pick<AuditRecord, 'at' | 'run_id' | 'event'>, seq: number): string {
  const at = record.at;
  const stamp = at.replace(/[-:]/g, '').replace('.', '');
  const safeRun = record.run_id.replace(/[^A-Za-z0-9_.-]/g, '_');
  return `${AUDIT_PREFIX}${at.slice(0, 4)}/${at.slice(5, 7)}/${at.slice(8, 10)}/${stamp}-${safeRun}-${String(seq).padStart(6, '0')}-${record.event}.json`;
}

const DAY_MS = 86_400_000;

/**
 * Where to start looking for the latest record (startAfter keys), narrowest first: the clock's
 * day, then 1, 2, 4, 8, … days back, then everything (undefined). Each search lists every key from
 * its day on (later days too), so it finds the latest record even when the clock is behind it;
 * doubling keeps the listing near the records of the last few days however long the trail, where
 * widening to the month, the year and everything listed the whole trail on every 1 January.
 */
export function auditSearchStarts(now: Date): (string | undefined)[] {
  const dayPrefix = (ms: number): string => {
    const iso = new Date(ms).toISOString();
    return `${AUDIT_PREFIX}${iso.slice(0, 4)}/${iso.slice(5, 7)}/${iso.slice(8, 10)}/`;
  };
  const starts: (string | undefined)[] = [dayPrefix(now.getTime())];
  // Nothing is named before 1970: past that, everything is the last search.
  for (let back = 1; now.getTime() - back * DAY_MS >= 0; back *= 2) starts.push(dayPrefix(now.getTime() - back * DAY_MS));
  starts.push(undefined);
  return starts;
}

const KEY_STAMP = /\/(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z-[^/]*$/;

/** The time (ms since the epoch) in a record key's name, or undefined for a key not named by auditRecordKey. */
export function auditKeyTime(key: string): number | undefined {
  const m = KEY_STAMP.exec(key);
  if (m === null) return undefined;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), Number(m[7]));
  return Number.isFinite(ms) ? ms : undefined;
}
