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
import { describePlacement, holdLabel, holdsForTable, type LegalHold, type RowHold } from '../compliance/legal-hold.js';
import { loadCheckTableHolds } from '../db/hold-queries.js';
import { loadDatabaseHolds, loadRunHolds, type HoldSnapshot, type HoldSourceOptions } from '../compliance/run-holds.js';
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
 * Returns the check each batch runs again inside its transaction (undefined when none is needed):
 * found in review, a hold placed while a restore loaded was never seen, and later batches
 * overwrote its rows.
 */
export async function checkRestoreHolds(
  q: Queryable,
  input: {
    config: Pick<Config, 'legal_holds'>;
    database: string;
    target: RestoreTarget;
    conflict: ConflictStrategy;
    holdSources?: HoldSourceOptions;
    now: Date;
    /** Extends holds limited to one database to its other configured names (compliance/run-holds.ts, withHoldDatabaseAliases). */
    withAliases?: (holds: HoldSnapshot) => Promise<HoldSnapshot>;
  },
): Promise<((q: Queryable) => Promise<void>) | undefined> {
  if (!changesExistingRows(input.conflict)) return undefined;
  const { target, conflict } = input;
  const label = `${input.database}/${target.schema}.${target.table}`;
  const loaded = await loadRunHolds(input.config, input.holdSources);
  const run = input.withAliases === undefined ? loaded : await input.withAliases(loaded);
  if (!run.enabled) return undefined;
  const holds = await loadDatabaseHolds(run, input.config, q, input.database);
  if (holds.unavailable !== undefined) {
    throw new AuditlogError(
      'LEGAL_HOLD_UNAVAILABLE',
      `restore --conflict ${conflict} into ${label} refused: its legal holds could not be read (${holds.unavailable.message}); make the holds source readable, or restore with --conflict skip, which never changes a row already there. Nothing was restored`,
      { details: { ...holds.unavailable.details, target: label }, cause: holds.unavailable },
    );
  }
  const { active, exists } = await activeHolds(q, holds.holds, input.database, target, input.now);
  if (active.length > 0) {
    // A hold may name a table before it exists: the rows restored into it are then held as they
    // go in, and a later batch's version of a row could not replace an earlier one's. Said so,
    // rather than "rows already there" and a way out (a new --target-table) the user already took.
    const why = exists
      ? `it is under active legal hold (${describeHolds(active)}), and ${conflict} would change rows already there; restore with --conflict skip (rows already there are kept as they are) or into a new table with --target-table SCHEMA.NAME`
      : `it does not exist yet, but an active legal hold names it (${describeHolds(active)}), so the rows restored into it would be held as they go in and ${conflict} could change them; restore with --conflict skip, or into a table no hold names`;
    throw new AuditlogError(
      'LEGAL_HOLD_ACTIVE',
      `restore --conflict ${conflict} into ${label} refused: ${why}. Nothing was restored`,
      { details: { target: label, conflict, holds: active.map((r) => holdLabel(r.hold)) } },
    );
  }
  // Holds from the configuration and the API are fixed for the run; the holds table and the
  // partition tree (a table attached under a held parent) are read again.
  const fixed = run.holds;
  const checkTable = input.config.legal_holds.check_table;
  if (fixed.length === 0 && checkTable === undefined) return undefined;
  return async (tx) => {
    const now = checkTable === undefined ? fixed : [...fixed, ...(await loadCheckTableHolds(tx, checkTable, input.database))];
    const { active: placed } = await activeHolds(tx, now, input.database, target, new Date());
    if (placed.length === 0) return;
    throw new AuditlogError(
      'LEGAL_HOLD_PLACED',
      `restore --conflict ${conflict} into ${label} stopped: a legal hold came to reach it while it was being restored (placed in the holds table, or through a partition attached: ${describeHolds(placed)}); the batch in flight was rolled back, the batches committed before it stay; restore the rest with --conflict skip (rows already there are kept as they are), or once the hold is lifted`,
      { details: { target: label, conflict, holds: placed.map((r) => holdLabel(r.hold)) } },
    );
  };
}

/** The holds among `holds` that are active on the target, placed through its partition tree as it is now. */
async function activeHolds(q: Queryable, holds: readonly LegalHold[], database: string, target: RestoreTarget, now: Date): Promise<{ active: RowHold[]; exists: boolean }> {
  if (holds.length === 0) return { active: [], exists: true };
  const tree = await loadHoldTree(q, database, target.schema, target.table);
  const found = holdsForTable(holds, { database, schema: target.schema, table: target.table }, now, tree);
  return { active: [...found.tableLevel.map((hold) => ({ hold })), ...found.rowLevel], exists: tree !== undefined };
}

function describeHolds(active: readonly RowHold[]): string {
  const shown = active.slice(0, 3).map((r) => {
    const how = describePlacement(r);
    return `${holdLabel(r.hold)}${r.hold.where === undefined ? '' : ` where ${r.hold.where}`}${how === '' ? '' : `, ${how}`}`;
  });
  return `${shown.join('; ')}${active.length > shown.length ? `; and ${active.length - shown.length} more` : ''}`;
}
