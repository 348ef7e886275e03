/**
 * Legal holds on a restore's target. `--conflict overwrite` and `upsert` rewrite the rows already
 * in the target whose keys the archive holds again; under a legal hold those rows must not change
 * (docs/compliance.md: data under legal hold must not move). Found in review: restore never read
 * the holds, and overwrote held rows. `skip` and `fail` never change an existing row, so they
 * need no holds. The holds come from the same sources as an archive run's, fail closed the same
 * way, and reach the target through its partition tree (legal-hold.ts, placeHold).
 */
import type { Config } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';
import { describePlacement, holdLabel, holdsForTable, type RowHold } from '../compliance/legal-hold.js';
import { loadDatabaseHolds, loadRunHolds, type HoldSourceOptions } from '../compliance/run-holds.js';
import { loadHoldTree } from '../db/partition-tree.js';
import type { Queryable } from '../db/queryable.js';
import type { ConflictStrategy } from './restore-sql.js';
import type { RestoreTarget } from './restore-watermarks.js';

/** Whether a strategy can change a row that is already in the target. */
export function changesExistingRows(conflict: ConflictStrategy): boolean {
  return conflict === 'overwrite' || conflict === 'upsert';
}

/**
 * Throws LEGAL_HOLD_ACTIVE when an active hold covers the target (the whole table, rows of it, or
 * a partition of it) and the strategy would change existing rows; LEGAL_HOLD_UNAVAILABLE when a
 * holds source cannot be read. Reads only; runs before anything is loaded (and in --dry-run).
 */
export async function checkRestoreHolds(
  q: Queryable,
  input: { config: Pick<Config, 'legal_holds'>; database: string; target: RestoreTarget; conflict: ConflictStrategy; holdSources?: HoldSourceOptions; now: Date },
): Promise<void> {
  if (!changesExistingRows(input.conflict)) return;
  const { target, conflict } = input;
  const label = `${input.database}/${target.schema}.${target.table}`;
  const run = await loadRunHolds(input.config, input.holdSources);
  if (!run.enabled) return;
  const holds = await loadDatabaseHolds(run, input.config, q, input.database);
  if (holds.unavailable !== undefined) {
    throw new AuditlogError(
      'LEGAL_HOLD_UNAVAILABLE',
      `restore --conflict ${conflict} into ${label} refused: its legal holds could not be read (${holds.unavailable.message}); make the holds source readable, or restore with --conflict skip, which never changes a row already there. Nothing was restored`,
      { details: { ...holds.unavailable.details, target: label }, cause: holds.unavailable },
    );
  }
  const found = holdsForTable(holds.holds, { database: input.database, schema: target.schema, table: target.table }, input.now, await loadHoldTree(q, input.database, target.schema, target.table));
  const active: RowHold[] = [...found.tableLevel.map((hold) => ({ hold })), ...found.rowLevel];
  if (active.length === 0) return;
  const shown = active.slice(0, 3).map((r) => {
    const how = describePlacement(r);
    return `${holdLabel(r.hold)}${r.hold.where === undefined ? '' : ` where ${r.hold.where}`}${how === '' ? '' : `, ${how}`}`;
  });
  throw new AuditlogError(
    'LEGAL_HOLD_ACTIVE',
    `restore --conflict ${conflict} into ${label} refused: it is under active legal hold (${shown.join('; ')}${active.length > shown.length ? `; and ${active.length - shown.length} more` : ''}), and ${conflict} would change rows already there; restore with --conflict skip (rows already there are kept as they are) or into a new table with --target-table SCHEMA.NAME. Nothing was restored`,
    { details: { target: label, conflict, holds: active.map((r) => holdLabel(r.hold)) } },
  );
}
