/**
 * The lock a table run holds while it may delete: an advisory lock in the database, plus a lock
 * file in local mode. Deletes ask `isHeld()` right before they start and before they commit.
 */
import { AuditlogError } from './errors.js';
import type { Queryable } from '../db/queryable.js';

export interface TableLock {
  /** False once the lock may be gone (connection lost, heartbeat failed, lock taken away): no delete may follow. */
  isHeld(): boolean;
  /** Why the lock was lost, once `isHeld()` is false because of a failure (undefined after a normal release). */
  lostReason(): string | undefined;
  release(): Promise<void>;
  /**
   * Asks the database, from another session (the delete's, right before COMMIT), whether the lock
   * is still granted to the session that took it: `isHeld()` only knows what the last heartbeat
   * and connection events said. Absent for locks the database does not hold (lock files).
   */
  confirmFrom?(q: Queryable): Promise<boolean>;
}

/** Held while every part is held; released in reverse order of acquisition, every part even if one fails. */
export function combineLocks(locks: readonly TableLock[]): TableLock {
  return {
    isHeld: () => locks.every((l) => l.isHeld()),
    lostReason: () => locks.map((l) => l.lostReason()).find((r) => r !== undefined),
    async confirmFrom(q) {
      for (const l of locks) if (l.confirmFrom !== undefined && !(await l.confirmFrom(q))) return false;
      return true;
    },
    async release() {
      const errors: unknown[] = [];
      for (const l of [...locks].reverse()) await l.release().catch((error: unknown) => errors.push(error));
      if (errors.length > 0) throw errors[0];
    },
  };
}

/** The error that stops a table run whose lock was lost: nothing more is deleted, in-flight batches are reconciled next run. */
export function lockLostError(label: string, reason: string | undefined, stoppedBefore: string): AuditlogError {
  return new AuditlogError(
    'LOCK_LOST',
    `lost the lock of ${label} (${reason ?? 'reason unknown'}); stopped before ${stoppedBefore}: the rows stay in the table and the next run reconciles the batch in flight — check the database connection and that no other archiver took over, then rerun`,
    { details: { table: label, reason: reason ?? null } },
  );
}
