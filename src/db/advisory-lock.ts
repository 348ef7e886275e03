/**
 * One archiver per (database, table): a session-level advisory lock held on a dedicated
 * connection for the whole table run. A second instance fails fast with who holds it.
 */
import type pg from 'pg';
import { AuditlogError } from '../core/errors.js';
import type { Queryable } from './queryable.js';
import type { TablePlan } from '../core/table-plan.js';
import { tableLabel } from '../core/table-plan.js';

/** 'audl' as int4: the advisory-lock namespace of this tool (objid = the table's oid). */
export const LOCK_NAMESPACE = 0x6175646c;

export interface TableLock {
  /** False as soon as the lock's connection is lost: the lock is gone with it, so no delete may follow. */
  isHeld(): boolean;
  release(): Promise<void>;
}

export async function acquireTableLock(client: pg.Client, plan: TablePlan): Promise<TableLock> {
  let held = true;
  client.on('error', () => {
    held = false;
  });
  client.on('end', () => {
    held = false;
  });
  const r = await client.query<{ ok: string }>('SELECT pg_try_advisory_lock($1::int, $2::int)::text AS ok', [LOCK_NAMESPACE, plan.oid | 0]);
  if (r.rows[0]?.ok !== 'true') {
    const h = await findLockHolder(client, plan.oid);
    const who = h === null ? 'another session' : `pid ${h.pid} (application_name "${h.application_name}", ${h.client_addr ?? 'local'}, connected since ${h.backend_start})`;
    held = false;
    throw new AuditlogError('LOCK_HELD', `${tableLabel(plan)} is being archived by ${who}; wait for it to finish, or stop it (pg_terminate_backend) if it is stuck`, {
      details: { database: plan.database, table: `${plan.schema}.${plan.table}`, holder_pid: h?.pid ?? null },
    });
  }
  return {
    isHeld: () => held,
    async release() {
      if (!held) return;
      held = false;
      await client.query('SELECT pg_advisory_unlock($1::int, $2::int)', [LOCK_NAMESPACE, plan.oid | 0]);
    },
  };
}

export interface LockHolder {
  pid: string;
  application_name: string;
  backend_start: string;
  client_addr: string | null;
}

/** The session holding the archiver's lock on the table with this oid, or null. */
export async function findLockHolder(q: Queryable, tableOid: number): Promise<LockHolder | null> {
  const r = await q.query<LockHolder>(
    `SELECT a.pid::text AS pid, a.application_name, a.backend_start::text AS backend_start, a.client_addr::text AS client_addr
       FROM pg_catalog.pg_locks l JOIN pg_catalog.pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.classid = $1::int::oid AND l.objid = $2::int::oid AND l.granted`,
    [LOCK_NAMESPACE, tableOid | 0],
  );
  return r.rows[0] ?? null;
}
