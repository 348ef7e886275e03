/**
 * One archiver per (database, table): a session-level advisory lock held on a dedicated
 * connection for the whole table run. A second instance fails fast with who holds it. While it is
 * held, a heartbeat confirms on that connection that the lock is still granted to this session.
 *
 * Session locks are only as good as the session: behind a pooler in transaction mode two archivers
 * can share one server backend, where pg_try_advisory_lock is re-entrant and both "held" the lock
 * (found by probing: rows deleted and archived nowhere). So the lock session also carries this
 * lock's own token (a session setting): a backend that already carries one is another client's,
 * and the heartbeat requires the token to still be ours.
 */
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { AuditlogError } from '../core/errors.js';
import { startHeartbeat } from '../core/heartbeat.js';
import type { TableLock } from '../core/table-lock.js';
import type { Queryable } from './queryable.js';
import type { TablePlan } from '../core/table-plan.js';
import { tableLabel } from '../core/table-plan.js';

export type { TableLock } from '../core/table-lock.js';

/** 'audl' as int4: the advisory-lock namespace of this tool (objid = the table's oid). */
export const LOCK_NAMESPACE = 0x6175646c;

export interface AdvisoryLockOptions {
  /** Confirm the lock every `intervalMs` (query answered within `timeoutMs`); no heartbeat when unset. */
  heartbeat?: { intervalMs: number; timeoutMs: number };
  /** Shown to a second instance (through pg_stat_activity.query) as who holds the lock and since when. */
  runId?: string;
  /**
   * Called once when the lock is found lost, with why, and how: by its own connection failing or
   * ending, or by the heartbeat (no answer in time, or the lock no longer granted).
   */
  onLost?: (reason: string, how: 'connection' | 'heartbeat') => void;
}

/** What the lock needs of a table: its oid, and its names for messages (`watermarks reset` has no full plan). */
export type LockTarget = Pick<TablePlan, 'oid' | 'database' | 'schema' | 'table'>;

export async function acquireTableLock(client: pg.Client, plan: LockTarget, options: AdvisoryLockOptions = {}): Promise<TableLock> {
  let held = true;
  let lost: string | undefined;
  let heartbeat: { stop(): void } | undefined;
  const markLost = (reason: string, how: 'connection' | 'heartbeat'): void => {
    if (!held) return;
    held = false;
    lost = reason;
    heartbeat?.stop();
    options.onLost?.(reason, how);
  };
  client.on('error', (error: Error) => markLost(`its connection failed: ${error.message}`, 'connection'));
  client.on('end', () => markLost('its connection ended', 'connection'));
  // The tag rides along in pg_stat_activity.query of the lock session (its last statement), so
  // another instance can say which run holds the lock and since when.
  const tag = lockTag(options.runId, new Date());
  const token = `${options.runId ?? 'run'}:${randomUUID()}`;
  // One statement: a backend runs one at a time, so two clients a pooler interleaves on one
  // backend cannot both find no token and both take the re-entrant lock (found in review, with
  // the check, the lock and the token in three statements). Tagged: it is the session's last
  // statement, and an untagged one left another run's LOCK_HELD without this run's id until the
  // first heartbeat (found by probing).
  const r = await client.query<{ other: string | null; ok: string | null; pid: string }>(
    `${tag}SELECT t.other, CASE WHEN t.other IS NULL THEN (pg_catalog.pg_try_advisory_lock($1::int, $2::int)
                   AND pg_catalog.set_config('${LOCK_TOKEN_SETTING}', $3, false) IS NOT NULL)::text END AS ok,
            pg_catalog.pg_backend_pid()::text AS pid
       FROM (SELECT NULLIF(pg_catalog.current_setting('${LOCK_TOKEN_SETTING}', true), '') AS other) t`,
    [LOCK_NAMESPACE, plan.oid | 0, token],
  );
  const row = r.rows[0]!;
  if (row.other !== null) {
    held = false;
    throw new AuditlogError(
      'DB_SESSION',
      `the lock session for ${tableLabel(plan)} landed on a server session another client set up (it carries lock token ${row.other}): the connection goes through a pooler in transaction mode, which defeats the table lock; connect the archiver to PostgreSQL directly (docs/operations.md, connection poolers)`,
      { details: { database: plan.database, table: `${plan.schema}.${plan.table}` } },
    );
  }
  if (row.ok !== 'true') {
    held = false;
    const h = await findLockHolder(client, plan.oid);
    const who = h === null ? 'another session' : describeLockHolder(h);
    const fix = h === null ? 'wait for it to finish' : `wait for it to finish, or if it is stuck end it with SELECT pg_terminate_backend(${h.pid}) (see auditlog archive --force-unlock)`;
    throw new AuditlogError('LOCK_HELD', `${tableLabel(plan)} is being archived by ${who}; ${fix}`, {
      details: { database: plan.database, table: `${plan.schema}.${plan.table}`, holder_pid: h?.pid ?? null, holder_run_id: h?.run_id ?? null },
    });
  }
  const pid = row.pid;
  if (options.heartbeat !== undefined) {
    heartbeat = startHeartbeat({
      ...options.heartbeat,
      beat: async () => {
        if (!(await confirmAdvisoryLock(client, plan.oid, tag, token))) throw new Error('the advisory lock is no longer granted to this session');
      },
      onLost: (reason) => markLost(reason, 'heartbeat'),
    });
  }
  return {
    isHeld: () => held,
    lostReason: () => lost,
    confirmFrom: (q) => isAdvisoryLockGrantedTo(q, plan.oid, pid),
    async release() {
      heartbeat?.stop();
      if (!held) return;
      held = false;
      await client.query(`SELECT pg_advisory_unlock($1::int, $2::int), pg_catalog.set_config('${LOCK_TOKEN_SETTING}', '', false)`, [LOCK_NAMESPACE, plan.oid | 0]);
    },
  };
}

/** The session setting that carries the lock's token on its lock session (a placeholder setting). */
const LOCK_TOKEN_SETTING = 'auditlog.lock_token';

/**
 * True when this session (pg_backend_pid) still holds the table's advisory lock — and, given the
 * lock's token, still carries it (the same server session, not one a pooler lent another client):
 * one catalog read, cheap enough for every heartbeat, and it also proves the connection answers.
 */
export async function confirmAdvisoryLock(client: Queryable, tableOid: number, tag = '', token?: string): Promise<boolean> {
  // As text: the archiver's sessions parse no value (connect.ts), so a boolean would arrive as 't'.
  const r = await client.query<{ held: string }>(
    `${tag}SELECT (EXISTS (SELECT 1 FROM pg_catalog.pg_locks
        WHERE locktype = 'advisory' AND classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2
          AND pid = pg_catalog.pg_backend_pid() AND granted)
        AND ($3::text IS NULL OR pg_catalog.current_setting('${LOCK_TOKEN_SETTING}', true) = $3::text))::text AS held`,
    [LOCK_NAMESPACE, tableOid | 0, token ?? null],
  );
  return r.rows[0]?.held === 'true';
}

/**
 * True when the session `pid` holds the table's advisory lock in this database: the fence a
 * delete checks from its own session right before COMMIT (pg_locks lists every database's locks,
 * and table oids repeat across databases).
 */
export async function isAdvisoryLockGrantedTo(q: Queryable, tableOid: number, pid: string): Promise<boolean> {
  const r = await q.query<{ held: string }>(
    `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_locks
        WHERE locktype = 'advisory' AND database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
          AND classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2 AND pid = $3::int AND granted)::text AS held`,
    [LOCK_NAMESPACE, tableOid | 0, pid],
  );
  return r.rows[0]?.held === 'true';
}

export interface LockHolder {
  pid: string;
  application_name: string;
  backend_start: string;
  client_addr: string | null;
  /** When the session last finished a statement: with the heartbeat, at most one interval ago for a live archiver. */
  state_change: string | null;
  /** From the lock tag of an auditlog session (null for other sessions, or without the privilege to see their query). */
  run_id: string | null;
  held_since: string | null;
}

/**
 * The session holding the archiver's lock on the table with this oid, or null. Advisory locks are
 * per database and pg_locks shows every database's: a table of another database can have the same oid.
 */
export async function findLockHolder(q: Queryable, tableOid: number): Promise<LockHolder | null> {
  const r = await q.query<Omit<LockHolder, 'run_id' | 'held_since'> & { query: string | null }>(
    `SELECT a.pid::text AS pid, a.application_name, a.backend_start::text AS backend_start, a.client_addr::text AS client_addr,
            a.state_change::text AS state_change, a.query
       FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.database = (SELECT oid FROM pg_catalog.pg_database WHERE datname = pg_catalog.current_database())
        AND l.classid = $1::int::oid AND l.objid = $2::int::oid AND l.granted`,
    [LOCK_NAMESPACE, tableOid | 0],
  );
  const row = r.rows[0];
  if (row === undefined) return null;
  const { query, ...holder } = row;
  return { ...holder, ...parseLockTag(query ?? '') };
}

/** "pid 42 (application_name "x", 10.0.0.5, run R, lock held since T, connected since B, last active S)". */
export function describeLockHolder(h: LockHolder): string {
  const parts = [`application_name "${h.application_name}"`, h.client_addr ?? 'local'];
  if (h.run_id !== null) parts.push(`run ${h.run_id}`);
  if (h.held_since !== null) parts.push(`lock held since ${h.held_since}`);
  parts.push(`connected since ${h.backend_start}`);
  if (h.state_change !== null) parts.push(`last active ${h.state_change}`);
  return `pid ${h.pid} (${parts.join(', ')})`;
}

const TAG_RE = /\/\* auditlog-lock run=([A-Za-z0-9._:-]*) since=([0-9TZ:.-]+) \*\//;

/** A SQL comment naming the run and acquisition time; only safe characters, so it cannot end the comment. */
export function lockTag(runId: string | undefined, since: Date): string {
  const run = (runId ?? '').replace(/[^A-Za-z0-9._:-]/g, '');
  return `/* auditlog-lock run=${run} since=${since.toISOString()} */ `;
}

export function parseLockTag(query: string): { run_id: string | null; held_since: string | null } {
  const m = TAG_RE.exec(query);
  return m === null ? { run_id: null, held_since: null } : { run_id: m[1] === '' ? null : m[1]!, held_since: m[2]! };
}
