/**
 * `auditlog audit list` and `auditlog audit verify`: read the audit trail in the archive's
 * storage. Verify recomputes the hash chain from the records themselves and exits 1 naming the
 * first record whose link is broken (an edited or removed record before it).
 */
import { isAuditRecordShape, type AuditRecord } from '../compliance/audit-record.js';
import { AuditChainVerifier, type StoredAuditRecord } from '../compliance/verify-audit-chain.js';
import { AuditlogError } from '../core/errors.js';
import { isUtcDay } from '../core/utc-day.js';

/** One trail to read: the storage trail, the audit table, or both (compliance.audit.backend). */
export interface AuditSource {
  name: string;
  /** The records in key order, streamed: a trail can be far larger than memory allows holding. */
  read: () => AsyncIterable<StoredAuditRecord>;
  /** Appends to it take turns, so it never forks (the database backend): see AuditChainVerifierOptions.linear. */
  linear?: boolean;
}

export interface AuditCommandInput {
  sources: AuditSource[];
  /** YYYY-MM-DD or an ISO instant: only records at or after it (verify: only problems there). */
  since?: string;
  /** `name` or `schema.name` (verify: only problems at that table's records). */
  table?: string;
  json: boolean;
  stdout: (text: string) => void;
}

// An instant must say which one: a date-time without `Z` or an offset would be read in local time.
const INSTANT = /^(\d{4}-\d{2}-\d{2})T([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d)(?:\.(\d{1,9}))?)?(Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;

/**
 * `--since`: a calendar day (YYYY-MM-DD, midnight UTC) or an ISO 8601 instant with `Z` or an
 * offset. Strict: `Date.parse` alone takes `2026-02-30` as March 2 and `2026-1-1` in local time.
 */
export function parseSince(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  if (isUtcDay(value)) return new Date(`${value}T00:00:00Z`);
  const instant = INSTANT.exec(value);
  const ms = instant !== null && isUtcDay(instant[1]!) ? Date.parse(value) : Number.NaN;
  if (!Number.isFinite(ms)) {
    throw new AuditlogError('USAGE', `--since expects a day as YYYY-MM-DD (UTC) or an ISO 8601 instant with Z or an offset (e.g. 2026-01-31T12:00:00Z), got "${value}"`);
  }
  // Records carry milliseconds; Date.parse drops the digits past them, which put a record of
  // .192Z inside --since .1925Z (found by probing). A fraction past the millisecond rounds up.
  const beyondMs = (instant![5] ?? '').slice(3);
  return new Date(/[1-9]/.test(beyondMs) ? ms + 1 : ms);
}

/** Output is written in chunks of about this many characters as records stream by, never held whole. */
const OUTPUT_CHUNK = 64 * 1024;

export async function runAuditListCommand(input: AuditCommandInput): Promise<number> {
  const since = parseSince(input.since);
  let pending = '';
  const write = (text: string): void => {
    pending += text;
    if (pending.length >= OUTPUT_CHUNK) flush();
  };
  const flush = (): void => {
    if (pending.length > 0) input.stdout(pending);
    pending = '';
  };
  let unreadable = 0;
  let shown = 0;
  // The JSON form is `{"records":[…],"unreadable":n}`, written a record at a time.
  if (input.json) write('{"records":[');
  // The first source is the primary trail (storage when configured); `both` lists it, verify checks all.
  const stored = input.sources.length === 0 ? [] : input.sources[0]!.read();
  for await (const s of stored) {
    let r: AuditRecord & { key: string };
    try {
      const parsed = JSON.parse(s.body.toString('utf8')) as unknown;
      // As verify reads it: JSON that is not a record (`null`, `{}`) is unreadable too. Found by
      // probing: text mode crashed on it, --json listed it as a record and exited 0.
      if (!isAuditRecordShape(parsed)) throw new Error('not an audit record');
      r = { key: s.key, ...parsed };
    } catch {
      unreadable++;
      continue;
    }
    // The same scope as verify's: a run's own record is listed with the tables it names, so the
    // ARCHIVE_START that verify --table reports as UNFINISHED can be found with list --table.
    if (!isInScope(r, since, input.table)) continue;
    if (input.json) write((shown > 0 ? ',' : '') + JSON.stringify(r));
    else write(formatAuditLine(r) + '\n');
    shown++;
  }
  if (input.json) {
    write(`],"unreadable":${unreadable}}\n`);
  } else {
    if (shown === 0) write('no audit records\n');
    if (unreadable > 0) write(`${unreadable} record(s) could not be read: run \`auditlog audit verify\`\n`);
  }
  flush();
  return unreadable > 0 ? 1 : 0;
}

function formatAuditLine(r: AuditRecord): string {
  const what = r.table === null ? '(run)' : `${r.database}/${r.schema}.${r.table}`;
  const counts = r.records === null ? '' : ` records=${r.records}`;
  const err = r.error === null ? '' : ` error=${r.error.code}: ${r.error.message}`;
  // Whose rows an ARCHIVE_RECONCILED record's objects hold: the run that wrote them, not the one recording them.
  const batchRun = typeof r.details?.batch_run_id === 'string' ? ` batch_run=${r.details.batch_run_id}` : '';
  // The keys themselves are in --json (a run's record may name hundreds): the runbooks search there.
  const objects = Array.isArray(r.object_keys) && r.object_keys.length > 0 ? ` objects=${r.object_keys.length}` : '';
  return `${r.at}  ${r.event.padEnd(16)} ${what} run=${r.run_id}${batchRun} operator=${r.operator} status=${r.status}${counts}${objects}${r.bytes === null ? '' : ` bytes=${r.bytes}`}${err}`;
}

/** Whether a record is in `--since`/`--table` scope; `parsed` is undefined when the record is not JSON (always in scope: it cannot say when or what it was). */
function isInScope(parsed: unknown, since: Date | undefined, tableName: string | undefined): boolean {
  const record = parsed as { at?: unknown; schema?: unknown; table?: unknown; details?: { tables?: unknown } | null } | null | undefined;
  const at = typeof record?.at === 'string' ? Date.parse(record.at) : NaN;
  const table = typeof record?.table === 'string' ? record.table : null;
  const qualified = table === null ? null : `${String(record?.schema)}.${table}`;
  const okSince = since === undefined || !Number.isFinite(at) || at >= since.getTime();
  const okTable = tableName === undefined || record === undefined || table === tableName || qualified === tableName || runNamesTable(record, tableName);
  return okSince && okTable;
}

/**
 * A run's own record (no table) is about every table it lists (ARCHIVE_START's details.tables):
 * left out, `verify --table T` dropped the UNFINISHED of a killed run of T, which only that
 * record can show (found by probing).
 */
function runNamesTable(record: { table?: unknown; details?: { tables?: unknown } | null } | null, tableName: string): boolean {
  if (record === null || (record.table !== null && record.table !== undefined)) return false;
  const tables = record.details?.tables;
  if (!Array.isArray(tables)) return false;
  return tables.some((t: { schema?: unknown; table?: unknown } | null) => t !== null && typeof t === 'object' && (t.table === tableName || `${String(t.schema)}.${String(t.table)}` === tableName));
}

/**
 * The chain is always recomputed from every record (a link can only be checked against the record
 * it names); `--since` and `--table` narrow what is reported: problems and forks at records in
 * scope. An unreadable record is always in scope — it cannot say when or what it was. Records are
 * streamed through the verifier, which keeps hashes, not bodies.
 */
export async function runAuditVerifyCommand(input: Pick<AuditCommandInput, 'sources' | 'json' | 'stdout' | 'since' | 'table'>): Promise<number> {
  const since = parseSince(input.since);
  const tableName = input.table;
  const reports = [];
  for (const source of input.sources) {
    const verifier = new AuditChainVerifier({
      ...(source.linear === true ? { linear: true } : {}),
      ...(since === undefined && tableName === undefined ? {} : { inScope: (parsed: unknown) => isInScope(parsed, since, tableName) }),
    });
    for await (const item of source.read()) verifier.add(item);
    reports.push({ source: source.name, ...verifier.report() });
  }
  const ok = reports.every((r) => r.problems.length === 0);
  if (input.json) {
    input.stdout(JSON.stringify({ ok, trails: reports }) + '\n');
  } else {
    const lines: string[] = [];
    for (const report of reports) {
      lines.push(`audit trail (${report.source}): ${report.records} record(s), ${report.problems.length} problem(s), ${report.forks.length} fork(s)`);
      for (const p of report.problems) lines.push(`${p.kind === 'unfinished-run' ? 'UNFINISHED' : p.kind === 'columns-mismatch' ? 'EDITED' : 'BROKEN'}: ${p.message}`);
      for (const o of report.open) lines.push(`open: ${o.message}`);
      for (const f of report.forks) lines.push(`fork: ${f.key} and ${f.sharesPredecessorWith} follow the same record (two runs appended at once; see docs/compliance.md)`);
      if (report.headSha256 !== null) lines.push(`head sha256: ${report.headSha256} (keep it elsewhere to detect removal of the newest records)`);
    }
    input.stdout(lines.join('\n') + '\n');
  }
  return ok ? 0 : 1;
}
