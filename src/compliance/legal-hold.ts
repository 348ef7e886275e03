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

/**
 * Whether a hold names this table. Lenient on purpose — a hold that matches too much keeps rows
 * that could have moved, one that matches too little loses them (found in review: `public.Events`,
 * `"public"."events"` or a trailing space protected nothing): surrounding spaces are ignored,
 * double-quoted parts are unquoted, and names compare without regard to case.
 */
export function holdApplies(hold: LegalHold, id: TableId): boolean {
  if (hold.database !== undefined && !holdDatabaseMatches(hold.database, id.database)) return false;
  const parts = splitHoldTableName(hold.table);
  if (parts === undefined) return false;
  const same = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();
  if (parts.length === 1) return same(parts[0]!, id.table);
  return same(parts[0]!, id.schema) && same(parts[1]!, id.table);
}

/**
 * Whether a hold's `database` names this configured database. As lenient as table names, for the
 * same reason (found in review: `database: App` with the database configured as `app` protected
 * nothing): surrounding spaces are ignored, surrounding double quotes removed, case ignored.
 */
export function holdDatabaseMatches(holdDatabase: string, database: string): boolean {
  return normalizeDatabaseName(holdDatabase) === normalizeDatabaseName(database);
}

function normalizeDatabaseName(name: string): string {
  let s = name.trim();
  if (s.length >= 2 && s.startsWith('"') && s.endsWith('"')) s = s.slice(1, -1).replace(/""/g, '"');
  return s.toLowerCase();
}

/** `name`, `schema.name`, with optional double quotes around either part (`""` inside quotes). */
export function splitHoldTableName(text: string): string[] | undefined {
  const s = text.trim();
  const parts: string[] = [];
  let i = 0;
  while (i <= s.length) {
    let part = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) return undefined;
        if (s[i] === '"') {
          if (s[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += s[i++];
      }
    } else {
      while (i < s.length && s[i] !== '.') part += s[i++];
      part = part.trim();
    }
    parts.push(part);
    if (i >= s.length) break;
    if (s[i] !== '.') return undefined;
    i++;
  }
  // A table name with a dot in it, unquoted ("a.b.c"): also try the whole text as one name.
  if (parts.length > 2 || parts.some((p) => p === '')) return parts.length > 2 ? [s] : undefined;
  return parts;
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
