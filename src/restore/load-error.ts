/**
 * The error of a restore stopped by the database: what PostgreSQL said, with its DETAIL (which
 * key or value), the constraint, column and table it names, the archive object(s) of the batch
 * being loaded, and what to do next. Before, every such error ended "rerun to continue", which
 * for a foreign key whose parent row is gone, a value too long for a narrowed column or a CHECK
 * constraint only fails the same way again, and the DETAIL was dropped (found by probing).
 */
import { AuditlogError, describeError, sqlState } from '../core/errors.js';

interface PgErrorFields {
  code?: unknown;
  detail?: unknown;
  hint?: unknown;
  constraint?: unknown;
  column?: unknown;
  table?: unknown;
  schema?: unknown;
  where?: unknown;
}

/** Longest DETAIL kept in the one-line message; the details keep all of it. */
const DETAIL_CHARS = 300;

/**
 * PostgreSQL's DETAIL, without row values: logs and summaries never carry them. A NOT NULL or
 * CHECK violation's "Failing row contains (…)" is the whole row; "Key (cols)=(values)" keeps its
 * values only when the columns are the target's key (how every message names a row), otherwise
 * (another unique index, a foreign key's column) they are replaced (found in review).
 */
export function detailOf(error: unknown, key: readonly string[] = []): string | undefined {
  const detail = (error as PgErrorFields | undefined)?.detail;
  if (typeof detail !== 'string' || detail === '') return undefined;
  if (/^Failing row contains /.test(detail)) return 'the failing row\'s values are not shown';
  const m = /^Key \((.*?)\)=\((.*)\)( [^()]*)$/s.exec(detail);
  if (m === null) return detail;
  const columns = m[1]!.split(', ');
  const isKey = columns.length === key.length && columns.every((c, i) => c === key[i]);
  return isKey ? detail : `Key (${m[1]})=(…)${m[3]}`;
}

/**
 * PostgreSQL's message without the value it quotes: a data exception names the value that failed
 * (`invalid input syntax for type integer: "…"`, `value "…" is out of range`), a row value.
 */
function messageOf(error: unknown): string {
  const text = oneLine(describeError(error));
  // From the first quote to the last: the value itself may hold quotes, which PostgreSQL does not escape.
  return sqlState(error)?.startsWith('22') === true ? text.replace(/".*"/s, '"…"') : text;
}

/**
 * Pure: after COMMIT was sent, whether `error` leaves its outcome unknown — the connection's
 * errors (no SQLSTATE), class 08 (connection exception) and 57 (operator intervention: a
 * terminated backend, e.g. one waiting for a synchronous standby, has already committed locally).
 * Any other SQLSTATE is the server's answer to the COMMIT: it failed, and rolled back.
 */
export function commitOutcomeUnknown(error: unknown): boolean {
  const state = sqlState(error);
  return state === undefined || state.startsWith('08') || state.startsWith('57');
}

/**
 * Pure: what to do after the database stopped the load. Data exceptions (22), integrity
 * violations (23), undefined objects and syntax (42) and a missing schema (3F) come back on every
 * rerun: the target or the data must change first. Connection (08), serialization and deadlock
 * (40), resources (53) and operator intervention (57) pass; so does an error without SQLSTATE
 * (the connection ended in the client).
 */
export function nextStep(state: string | undefined): string {
  if (state === undefined) return 'rerun to continue';
  const cls = state.slice(0, 2);
  if (cls === '22' || cls === '23' || cls === '42' || cls === '3F') return 'fix the target (or the data), then rerun';
  if (cls === '08' || cls === '40' || cls === '53' || cls === '57') return 'rerun to continue';
  return 'fix the cause, then rerun';
}

const oneLine = (s: string): string => s.replace(/\s*\n\s*/g, ' ').trim();

/** Pure: PostgreSQL's message with its DETAIL and the constraint, column and table it names, on one line. */
export function describeDatabaseError(error: unknown, key: readonly string[] = []): string {
  const e = (error ?? {}) as PgErrorFields;
  let text = messageOf(error);
  const shown = detailOf(error, key);
  if (shown !== undefined) {
    const detail = oneLine(shown);
    text += ` — ${detail.length > DETAIL_CHARS ? `${detail.slice(0, DETAIL_CHARS)}…` : detail}`;
  }
  const names: string[] = [];
  if (typeof e.constraint === 'string') names.push(`constraint ${e.constraint}`);
  if (typeof e.column === 'string') names.push(`column ${e.column}`);
  if (typeof e.table === 'string') names.push(`table ${typeof e.schema === 'string' ? `${e.schema}.` : ''}${e.table}`);
  const state = sqlState(error);
  if (state !== undefined) names.push(`SQLSTATE ${state}`);
  return names.length === 0 ? text : `${text} (${names.join(', ')})`;
}

/**
 * Pure: a name a function of the target (trigger, CHECK or default expression) did not find
 * through the search_path, which the restore's sessions pin to pg_catalog (db/connect.ts), found
 * by probing with a trigger that inserted into an unqualified history table. Not the application's
 * path instead: the load's INSERT is the statement the function runs under, and its own operators
 * and casts (=, BETWEEN, DISTINCT ON's ordering, ::type) resolve through the same path, where an
 * object in a schema such as public could shadow them.
 */
export function searchPathHint(error: unknown): string | undefined {
  const e = (error ?? {}) as PgErrorFields;
  const state = sqlState(error);
  if (state === undefined || !['42P01', '42883', '42704', '3F000'].includes(state) || typeof e.where !== 'string') return undefined;
  const fn = /function (\S+?\([^)]*\)|"[^"]+"|\S+)/.exec(e.where)?.[1]?.replace(/^"(.*)"$/, '$1');
  if (fn === undefined) return undefined;
  const named = fn.includes('(') ? fn : `${fn}(…)`;
  return `raised inside function ${named} (a trigger, CHECK or default of the target): restore's sessions set search_path to pg_catalog, so names the function leaves unqualified are not found; schema-qualify them in the function, or give it its own path (ALTER FUNCTION ${named} SET search_path = public)`;
}

/** Pure: "archive object K" or "archive object K (and N more objects of this batch)". */
export function batchObjects(keys: readonly string[]): string {
  return keys.length === 1 ? `archive object ${keys[0]}` : `archive object ${keys[0]} (and ${keys.length - 1} more objects of this batch)`;
}

/**
 * The DB_QUERY error of a restore the database stopped. `objects`: the archive objects of the
 * batch being loaded, where known; `hint`: a sentence on the cause where the loader knows more.
 */
export function loadStoppedError(error: unknown, target: { schema: string; table: string; key?: readonly string[] }, objects?: readonly string[], hint?: string): AuditlogError {
  const e = (error ?? {}) as PgErrorFields;
  const state = sqlState(error);
  const where = objects === undefined || objects.length === 0 ? `restore into ${target.schema}.${target.table}` : `restoring ${batchObjects(objects)} into ${target.schema}.${target.table}`;
  const batch = objects === undefined || objects.length === 0 ? '' : 'this batch was rolled back, ';
  const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);
  const hints = [hint, searchPathHint(error)].filter((h) => h !== undefined).map((h) => `; ${h}`).join('');
  return new AuditlogError('DB_QUERY', `${where} stopped: ${describeDatabaseError(error, target.key)}${hints}; ${batch}batches committed before stay restored; ${nextStep(state)}`, {
    details: {
      sqlstate: state ?? null,
      detail: detailOf(error, target.key) ?? null,
      constraint: str(e.constraint),
      column: str(e.column),
      table: str(e.table),
      ...(objects === undefined || objects.length === 0 ? {} : { key: objects[0]!, objects: [...objects] }),
    },
    cause: error,
  });
}

/**
 * The DB_QUERY error of a batch whose connection the query deadline gave up (db/connect.ts): the
 * deadline's words (what stayed silent, for how long, what to check), the batch's objects, and
 * what became of the batch. Before its COMMIT was sent nothing of it can commit — only the client
 * commits, and PostgreSQL rolls the open transaction back when it ends the abandoned session. A
 * COMMIT without an answer may have committed: with the database restore watermark it was
 * recorded in the same transaction, so the rerun skips it exactly when it committed; otherwise its
 * rows may be there unrecorded, which the rerun meets as conflicts. Without `commit`: the
 * restore stopped outside a batch. The result keeps the deadline's details and has it as `cause`.
 */
export function silentConnectionError(
  error: AuditlogError,
  target: { schema: string; table: string },
  objects: readonly string[],
  commit?: { sent: boolean; recordedWithRows: boolean; strategy: string },
): AuditlogError {
  const after = 'batches committed before stay restored; once the database answers again, rerun the same command';
  let outcome: string;
  if (commit === undefined) outcome = `${after} to continue`;
  else if (!commit.sent) outcome = `this batch was not committed (PostgreSQL rolls it back when it ends the abandoned session), ${after} to continue`;
  else if (commit.recordedWithRows) outcome = `this batch's COMMIT got no answer, so whether it committed is unknown — its restore watermark commits or not with it; ${after} to continue (it loads this batch only if it did not commit)`;
  else outcome = `this batch's COMMIT got no answer, so whether it committed is unknown, and its objects are not recorded as restored; ${after}${commit.strategy === 'fail' ? ' with --conflict skip (if the batch committed, its rows are there and are kept)' : ' to continue'}`;
  const where = objects.length === 0 ? `restore into ${target.schema}.${target.table}` : `restoring ${batchObjects(objects)} into ${target.schema}.${target.table}`;
  return new AuditlogError('DB_QUERY', `${where} stopped: ${error.message}; ${outcome}`, {
    details: { ...error.details, ...(commit === undefined ? {} : { commit_sent: commit.sent }), ...(objects.length === 0 ? {} : { key: objects[0]!, objects: [...objects] }) },
    cause: error,
  });
}
