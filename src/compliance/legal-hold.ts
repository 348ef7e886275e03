/**
 * Legal holds, whatever their source: a table-level hold keeps the whole table where it is; a
 * record-level hold (`where`) keeps the rows its filter matches. Pure: matching and expiry only.
 */
export type HoldSource = 'config' | 'check_table' | 'api';

export interface LegalHold {
  source: HoldSource;
  /** Configured database name; undefined = every database. */
  database?: string;
  /** `name` or `schema.name`, as in the configuration. */
  table: string;
  where?: string;
  reason: string;
  setBy?: string;
  /** ISO 8601; undefined = never expires. */
  expiresAt?: string;
}

export interface TableId {
  database: string;
  schema: string;
  table: string;
}

/** A short name for messages and audit records: `source:table[#n]`. */
export function holdLabel(hold: LegalHold, index?: number): string {
  return `${hold.source} hold on ${hold.table}${index === undefined ? '' : ` #${index + 1}`} (${hold.reason})`;
}

export function holdApplies(hold: LegalHold, id: TableId): boolean {
  if (hold.database !== undefined && hold.database !== id.database) return false;
  return hold.table === id.table || hold.table === `${id.schema}.${id.table}`;
}

/** An unparseable expiry counts as not expired: a hold is never dropped because of a typo (fail closed). */
export function isExpired(hold: LegalHold, now: Date): boolean {
  if (hold.expiresAt === undefined) return false;
  const at = Date.parse(hold.expiresAt);
  return Number.isFinite(at) && at <= now.getTime();
}

export interface TableHolds {
  /** Active holds without a filter: the table is not archived at all. */
  tableLevel: LegalHold[];
  /** Active holds with a filter: matching rows are excluded. */
  recordLevel: LegalHold[];
  expired: LegalHold[];
}

export function holdsForTable(holds: readonly LegalHold[], id: TableId, now: Date): TableHolds {
  const out: TableHolds = { tableLevel: [], recordLevel: [], expired: [] };
  for (const hold of holds) {
    if (!holdApplies(hold, id)) continue;
    if (isExpired(hold, now)) out.expired.push(hold);
    else if (hold.where === undefined) out.tableLevel.push(hold);
    else out.recordLevel.push(hold);
  }
  return out;
}
