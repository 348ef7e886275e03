/**
 * `auditlog holds list`: every legal hold from every source, whether it is active or expired, and
 * which configured tables (and, for record-level holds, how many of their rows) it keeps.
 * Reads only. Exit 1 when a source cannot be read or a filter is refused: the next archive run
 * would hold (or fail) those tables, and the operator should know now.
 */
import { selectTargets } from '../archive/run-archive.js';
import type { Config, TableConfig } from '../config/schema.js';
import { describeError } from '../core/errors.js';
import { describePlacement, holdApplies, holdDatabaseMatches, holdFilterOf, isExpired, placeHold, type LegalHold, type PartitionTree, type RowHold } from '../compliance/legal-hold.js';
import { loadHoldTree } from '../db/partition-tree.js';
import { loadDatabaseHolds, loadRunHolds, withHoldDatabaseAliases, type HoldSourceOptions } from '../compliance/run-holds.js';
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
  /**
   * Configured tables it covers; for record-level holds and holds on a partition with the rows it
   * keeps (null when not counted). `through`: how a hold naming another table of the partition tree
   * reaches it ("through partitioned table public.events", "partition public.events_2023_02 only").
   */
  affects: { database: string; schema: string; table: string; rows_held: number | null; through?: string; problem?: string }[];
  /** Set when the hold covers configured tables, none of them selected by --database/--table. */
  outside_selection?: true;
}

export async function runHoldsListCommand(input: HoldsListInput): Promise<number> {
  const now = input.now ?? new Date();
  const problems: string[] = [];
  if (!input.config.legal_holds.enabled) problems.push('legal_holds.enabled is false: holds are not checked by archive runs');
  const run = await withHoldDatabaseAliases({ config: input.config, secrets: input.secrets, now: () => now }, await loadRunHolds({ legal_holds: { ...input.config.legal_holds, enabled: true } }, input.sources));
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
  // Every configured table of each database is placed (a hold on a table outside --table is no
  // problem); only the selected ones are listed under a hold.
  const selected = new Set(selectTargets(input).flatMap((d) => d.tables));
  const namedElsewhere = new Set<LegalHold>();
  /** Databases where a configured table's partition tree could not be read. */
  const unreadableTrees = new Set<string>();
  const mayReachUnreadableTree = (hold: LegalHold): boolean => [...unreadableTrees].some((d) => hold.database === undefined || holdDatabaseMatches(hold.database, d));
  for (const db of selectTargets({ config: input.config, ...(input.database === undefined ? {} : { database: input.database }) })) {
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
            if (!selected.has(t)) {
              namedElsewhere.add(h);
              continue;
            }
            const uncounted = h.where !== undefined && r.status === 'active';
            r.affects.push({ ...id, rows_held: null, ...(uncounted ? { problem: `rows not counted: database ${db.name} unreachable` } : {}) });
          }
        }
        return;
      }
      const snapshot = await loadDatabaseHolds({ enabled: true, holds: run.holds }, { legal_holds: { ...input.config.legal_holds, enabled: true } }, pool, db.name);
      if (snapshot.unavailable !== undefined) problems.push(snapshot.unavailable.message);
      // Holds reach a table through its partition tree, as in an archive run (legal-hold.ts, placeHold).
      const trees = new Map<TableConfig, PartitionTree | undefined>();
      if (snapshot.holds.length > 0) {
        for (const t of db.tables) {
          try {
            trees.set(t, await loadHoldTree(pool, db.name, t.schema, t.name));
          } catch (error) {
            problems.push(`${(error as Error).message}; they are not shown for it`);
            unreadableTrees.add(db.name);
          }
        }
      }
      for (const hold of snapshot.holds) {
        const r = report(hold);
        for (const t of db.tables) {
          const id = { database: db.name, schema: t.schema, table: t.name };
          const placed = placeHold(hold, id, trees.get(t));
          if (placed === undefined) continue;
          if (!selected.has(t)) {
            namedElsewhere.add(hold);
            continue;
          }
          const row: RowHold = { hold, ...(placed.scope === 'partition' ? { partitions: placed.partitions } : placed.through === undefined ? {} : { through: placed.through }) };
          const through = describePlacement(row);
          const entry = { ...id, rows_held: null as number | null, ...(through === '' ? {} : { through }) };
          // A whole-table hold (on the table or a table above it) keeps every row: not counted.
          if ((hold.where === undefined && placed.scope === 'table') || r.status === 'expired') {
            r.affects.push(entry);
            continue;
          }
          const filter = holdFilterOf(row);
          try {
            if (hold.where !== undefined) await checkHoldFilter(pool, id, hold, filter.partitionOids);
            r.affects.push({ ...entry, rows_held: await countHeldRows(pool, id, filter) });
          } catch (error) {
            const message = describeError(error);
            problems.push(message);
            r.affects.push({ ...entry, problem: message });
          }
        }
      }
    });
  }
  // An active hold that names no configured table protects nothing: most likely a misspelt name.
  // Judged against every configured table, not only those --database/--table selected: a hold on a
  // table outside the selection is not a problem (found in review). Databases not connected to
  // (outside --database) are judged by their tables' names. Expired holds are described the same
  // way: one on a configured table outside the selection read "affects no configured table"
  // (found by probing).
  for (const [hold, r] of reports) {
    if (r.affects.length > 0) continue;
    const named = namedElsewhere.has(hold) || input.config.databases.some((d) => d.tables.some((t) => holdApplies(hold, { database: d.name, schema: t.schema, table: t.name })));
    if (named) r.outside_selection = true;
    // A hold that may reach a table through a tree that could not be read is not called misspelt
    // (its problem is reported above), as in an archive run (found in review).
    else if (r.status === 'active' && !mayReachUnreadableTree(hold)) problems.push(`active ${r.source} hold on ${r.database === null ? '' : `${r.database}/`}${r.table} names no configured table (nor its parent or a partition of it): check its table (and database) name`);
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
      lines.push(`  ${a.database}/${a.schema}.${a.table}${a.through === undefined ? '' : ` (${a.through})`}${rows}${a.problem === undefined ? '' : ` — ${a.problem}`}`);
    }
  }
  for (const p of problems) lines.push(`problem: ${p}`);
  return lines.join('\n') + '\n';
}
