/**
 * `auditlog archive --force-unlock`: before the run, clear what a dead archiver left behind. A
 * lock file (local mode) is removed after saying who held it; a live holder notices at its next
 * heartbeat and stops before its next delete. An advisory lock is never taken away from a session
 * silently: its holder is printed with the SQL that would end it, for a person to decide.
 */
import type { Config, DatabaseConfig } from '../config/schema.js';
import { describeError } from '../core/errors.js';
import { describeFileLockHolder } from '../core/file-lock-state.js';
import { describeLockHolder, findLockHolder } from '../db/advisory-lock.js';
import { quoteQualified } from '../db/quote-ident.js';
import { fileLockPath, forceRemoveFileLock } from '../state/file-lock.js';
import { withDatabase } from '../state/inspect-tables.js';

export interface ForceUnlockInput {
  config: Config;
  databases: DatabaseConfig[];
  secrets?: readonly string[];
  /** One line per table and lock. */
  print: (line: string) => void;
  now?: () => number;
}

export async function forceUnlock(input: ForceUnlockInput): Promise<void> {
  const now = input.now ?? Date.now;
  for (const db of input.databases) {
    await withDatabase({ config: input.config, ...(input.secrets === undefined ? {} : { secrets: input.secrets }) }, db, async (pool, connectProblem) => {
      for (const t of db.tables) {
        const label = `${db.name}/${t.schema}.${t.name}`;
        if (input.config.local !== undefined) {
          const file = fileLockPath(input.config.local.path, { database: db.name, schema: t.schema, table: t.name });
          try {
            const removed = await forceRemoveFileLock(file);
            if (removed === undefined) input.print(`${label}: no lock file`);
            else {
              const who = removed.content === undefined ? 'an unreadable lock file' : describeFileLockHolder(removed.content, now());
              input.print(`${label}: removed lock file ${file}, held by ${who}`);
            }
          } catch (error) {
            input.print(`${label}: could not remove lock file ${file}: ${describeError(error)}`);
          }
        }
        if (connectProblem !== undefined) {
          input.print(`${label}: advisory lock not checked: ${connectProblem}`);
          continue;
        }
        try {
          const r = await pool.query<{ oid: string | null }>('SELECT to_regclass($1)::oid::text AS oid', [quoteQualified(t.schema, t.name)]);
          const oid = r.rows[0]?.oid ?? null;
          const holder = oid === null ? null : await findLockHolder(pool, Number(oid));
          if (holder === null) input.print(`${label}: advisory lock free`);
          else {
            input.print(
              `${label}: advisory lock held by ${describeLockHolder(holder)}; not ended automatically — if that session is stuck, run on the database: SELECT pg_terminate_backend(${holder.pid});`,
            );
          }
        } catch (error) {
          input.print(`${label}: advisory lock not checked: ${describeError(error)}`);
        }
      }
    });
  }
}
