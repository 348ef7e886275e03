/**
 * A hold's `database` names a configured database; two `databases` entries can reach one and the
 * same database (one server, one database, two names — to give some tables other settings, say).
 * A hold naming one of them then held nothing under the other, and the rows it holds were archived
 * and deleted through the other name without a word (found by probing). So a hold covers every
 * configured name of the database it names. Pure: the caller says which database each name reaches.
 */
import { isExpired, holdDatabaseMatches, type LegalHold } from './legal-hold.js';

/** Whether some active hold is limited to one database: only then are the databases' identities worth reading. */
export function needsDatabaseAliases(holds: readonly LegalHold[], databaseCount: number, now: Date): boolean {
  return databaseCount > 1 && holds.some((h) => h.database !== undefined && !isExpired(h, now));
}

/**
 * The holds, each limited to one database given the other configured names of that database.
 * `identities`: configured name → what identifies the database behind it (undefined: not known,
 * e.g. unreachable; such a name is nobody's alias).
 */
export function addDatabaseAliases(holds: readonly LegalHold[], identities: ReadonlyMap<string, string | undefined>): LegalHold[] {
  return holds.map((hold) => {
    if (hold.database === undefined) return hold;
    const named = [...identities].filter(([name, id]) => id !== undefined && holdDatabaseMatches(hold.database!, name)).map(([, id]) => id);
    const aliases = [...identities].filter(([name, id]) => id !== undefined && named.includes(id) && !holdDatabaseMatches(hold.database!, name)).map(([name]) => name);
    return aliases.length === 0 ? hold : { ...hold, databaseAliases: aliases };
  });
}

/** What identifies a database across configured names: its cluster's system identifier and its oid (with its name where the identifier cannot be read). */
export function databaseIdentityKey(identity: { system_identifier: string | null; database: string; database_oid?: string | null }): string {
  return JSON.stringify([identity.system_identifier, identity.database_oid ?? null, identity.system_identifier === null ? identity.database : null]);
}
