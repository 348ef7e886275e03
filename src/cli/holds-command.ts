/**
 * `auditlog holds list`: every legal hold from every source, whether it is active or expired, and
 * which configured tables (and, for record-level holds, how many of their rows) it keeps.
 * Reads only. Exit 1 when a source cannot be read or a filter is refused: the next archive run
 * would hold (or fail) those tables, and the operator should know now.
 */
import { selectTargets } from '../archive/run-archive.js';
import type { Config } from '../config/schema.js';
import { describeError } from '../core/errors.js';
import { holdApplies, isExpired, type LegalHold } from '../compliance/legal-hold.js';
import { loadDatabaseHolds, loadRunHolds, type HoldSourceOptions } from '../compliance/run-holds.js';
import { checkHoldFilter, countHeldRows } from '../db/hold-queries.js';
import { withDatabase } from '../state/inspect-tables.js';

export interface HoldsListInput {
  config: Config;
  database?: string;
  table?: string;
  json: boolean;
  secrets: readonly string[];
  sources: HoldSourceOptions;
  now?: Date;
  stdout: (text: string) => void;
}

export interface HoldReport {
  source: string;
  database: string | null;
  table: string;
  where: string | null;
  reason: string;
  set_by: string | null;
  expires_at: string | null;
  status: 'active' | 'expired';
  level: 'table' | 'record';
  /** Configured tables it covers; for record-level holds with the rows it keeps (null when not counted). */
  affects: { database: string; schema: string; table: string; rows_held: number | null; problem?: string }[];
  /** Set when the hold covers configured tables, none of them selected by --database/--table. */
  outside_selection?: true;
}

export async function runHoldsListCommand(input: HoldsListInput): Promise<number> {
  const now = input.now ?? new Date();
  const problems: string[] = [];
  if (!input.config.legal_holds.enabled) problems.push('legal_holds.enabled is false: holds are not checked by archive runs');
  const run = await loadRunHolds({ legal_holds: { ...input.config.legal_holds, enabled: true } }, input.sources);
  if (run.unavailable !== undefined) problems.push(run.unavailable.message);
  const reports = new Map<LegalHold, HoldReport>();
  const report = (hold: LegalHold): HoldReport => {
    let r = reports.get(hold);
    if (r === undefined) {
      r = {
        source: hold.source,
        database: hold.database ?? null,
        table: hold.table,
        where: hold.where ?? null,
        reason: hold.reason,
        set_by: hold.setBy ?? null,
        expires_at: hold.expiresAt ?? null,
        status: isExpired(hold, now) ? 'expired' : 'active',
        level: hold.where === undefined ? 'table' : 'record',
        affects: [],
      };
      reports.set(hold, r);
    }
    return r;
  };
  for (const db of selectTargets(input)) {
    await withDatabase({ config: input.config, secrets: input.secrets }, db, async (pool, connectProblem) => {
      if (connectProblem !== undefined) {
        problems.push(`database ${db.name}: ${connectProblem}`);
        // The holds table cannot be read, but the configured and API holds still name its tables:
        // listed without counts, rather than as holds that affect no table.
        for (const h of run.holds) {
          const r = report(h);
          for (const t of db.tables) {
            const id = { database: db.name, schema: t.schema, table: t.name };
            if (!holdApplies(h, id)) continue;
            const uncounted = h.where !== undefined && r.status === 'active';
            r.affects.push({ ...id, rows_held: null, ...(uncounted ? { problem: `rows not counted: database ${db.name} unreachable` } : {}) });
          }
        }
        return;
      }
      const snapshot = await loadDatabaseHolds({ enabled: true, holds: run.holds }, { legal_holds: { ...input.config.legal_holds, enabled: true } }, pool, db.name);
      if (snapshot.unavailable !== undefined) problems.push(snapshot.unavailable.message);
      for (const hold of snapshot.holds) {
        const r = report(hold);
        for (const t of db.tables) {
          const id = { database: db.name, schema: t.schema, table: t.name };
          if (!holdApplies(hold, id)) continue;
          if (hold.where === undefined || r.status === 'expired') {
            r.affects.push({ ...id, rows_held: null });
            continue;
          }
          try {
            await checkHoldFilter(pool, id, hold);
            r.affects.push({ ...id, rows_held: await countHeldRows(pool, id, hold.where) });
          } catch (error) {
            const message = describeError(error);
            problems.push(message);
            r.affects.push({ ...id, rows_held: null, problem: message });
          }
        }
      }
    });
  }
  // An active hold that names no configured table protects nothing: most likely a misspelt name.
  // Judged against every configured table, not only those --database/--table selected: a hold on a
  // table outside the selection is not a problem (found in review). Expired holds are described
  // the same way: one on a configured table outside the selection read "affects no configured
  // table" (found by probing).
  for (const [hold, r] of reports) {
    if (r.affects.length > 0) continue;
    const named = input.config.databases.some((d) => d.tables.some((t) => holdApplies(hold, { database: d.name, schema: t.schema, table: t.name })));
    if (named) r.outside_selection = true;
    else if (r.status === 'active') problems.push(`active ${r.source} hold on ${r.database === null ? '' : `${r.database}/`}${r.table} names no configured table: check its table (and database) name`);
  }
  const holds = [...reports.values()];
  if (input.json) input.stdout(JSON.stringify({ holds, problems }) + '\n');
  else input.stdout(formatHolds(holds, problems));
  return problems.some((p) => !p.startsWith('legal_holds.enabled')) ? 1 : 0;
}

export function formatHolds(holds: readonly HoldReport[], problems: readonly string[]): string {
  const lines: string[] = [];
  if (holds.length === 0) lines.push('no legal holds');
  for (const h of holds) {
    const scope = h.where === null ? 'whole table' : `rows where ${h.where}`;
    const expiry = h.expires_at === null ? 'no expiry' : `${h.status === 'expired' ? 'expired' : 'expires'} ${h.expires_at}`;
    lines.push(`${h.status.toUpperCase()} ${h.source} hold on ${h.database === null ? '' : `${h.database}/`}${h.table}: ${scope}; ${h.reason}${h.set_by === null ? '' : ` (set by ${h.set_by})`}; ${expiry}`);
    if (h.affects.length === 0) lines.push(h.outside_selection === true ? '  affects no selected table' : '  affects no configured table');
    for (const a of h.affects) {
      const rows = a.rows_held === null ? '' : `: ${a.rows_held} row(s) held`;
      lines.push(`  ${a.database}/${a.schema}.${a.table}${rows}${a.problem === undefined ? '' : ` — ${a.problem}`}`);
    }
  }
  for (const p of problems) lines.push(`problem: ${p}`);
  return lines.join('\n') + '\n';
}
