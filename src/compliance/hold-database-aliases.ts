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
 * e.g. unreachable at that moment). Unknown is taken as "may be the same" (fail closed): a name
 * whose identity could not be read may be an alias of the held database, and when the held
 * database's own identity is unknown every other name may be its alias (found in review: a
 * connection refused to `app` for a moment let `app_again` delete the rows a hold on `app` kept).
 */
export function addDatabaseAliases(holds: readonly LegalHold[], identities: ReadonlyMap<string, string | undefined>): LegalHold[] {
  return holds.map((hold) => {
    if (hold.database === undefined) return hold;
    const named = [...identities].filter(([name]) => holdDatabaseMatches(hold.database!, name)).map(([, id]) => id);
    const namedUnknown = named.includes(undefined);
    const aliases = [...identities]
      .filter(([name, id]) => !holdDatabaseMatches(hold.database!, name) && (id === undefined || namedUnknown || named.includes(id)))
      .map(([name]) => name);
    return aliases.length === 0 ? hold : { ...hold, databaseAliases: aliases };
  });
}

/** The configured names whose identity could not be read (undefined), for the warning that says why a hold reaches further. */
export function unidentifiedDatabases(identities: ReadonlyMap<string, string | undefined>): string[] {
  return [...identities].filter(([, id]) => id === undefined).map(([name]) => name);
}

/** What identifies a database across configured names: its cluster's system identifier and its oid (with its name where the identifier cannot be read). */
export function databaseIdentityKey(identity: { system_identifier: string | null; database: string; database_oid?: string | null }): string {
  return JSON.stringify([identity.system_identifier, identity.database_oid ?? null, identity.system_identifier === null ? identity.database : null]);
}
