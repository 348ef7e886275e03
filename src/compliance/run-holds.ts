/**
 * The legal holds a run works with, gathered once per run (config file, HTTP API) and once per
 * database (its holds table). A source that cannot be read is kept as `unavailable`: every table
 * it could cover is then not archived (fail closed), and the run says why.
 */
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { AuditlogError, describeError } from '../core/errors.js';
import { loadCheckTableHolds } from '../db/hold-queries.js';
import type { Queryable } from '../db/queryable.js';
import { loadApiHolds } from './load-api-holds.js';
import type { LegalHold } from './legal-hold.js';
import { addDatabaseAliases, databaseIdentityKey, needsDatabaseAliases, unidentifiedDatabases } from './hold-database-aliases.js';
import { selectDatabaseIdentity } from '../db/database-identity.js';
import { withDatabase } from '../state/inspect-tables.js';

export interface HoldSnapshot {
  enabled: boolean;
  holds: LegalHold[];
  unavailable?: AuditlogError;
}

export interface HoldSourceOptions {
  /** Value of the environment variable named by legal_holds.api.auth_env (read by the CLI). */
  apiAuthValue?: string;
  fetch?: typeof fetch;
}

export function configuredHolds(config: Pick<Config, 'legal_holds'>): LegalHold[] {
  return config.legal_holds.holds.map((h) => ({
    source: 'config' as const,
    ...(h.database === undefined ? {} : { database: h.database }),
    table: h.table,
    ...(h.where === undefined ? {} : { where: h.where }),
    reason: h.reason,
    ...(h.set_by === undefined ? {} : { setBy: h.set_by }),
    ...(h.expires_at === undefined ? {} : { expiresAt: h.expires_at }),
  }));
}

export async function loadRunHolds(config: Pick<Config, 'legal_holds'>, options: HoldSourceOptions = {}): Promise<HoldSnapshot> {
  if (!config.legal_holds.enabled) return { enabled: false, holds: [] };
  const holds = configuredHolds(config);
  const api = config.legal_holds.api;
  if (api === undefined) return { enabled: true, holds };
  try {
    holds.push(...(await loadApiHolds({ api, ...(options.apiAuthValue === undefined ? {} : { authValue: options.apiAuthValue }), ...(options.fetch === undefined ? {} : { fetch: options.fetch }) })));
    return { enabled: true, holds };
  } catch (error) {
    return { enabled: true, holds, unavailable: asUnavailable(error) };
  }
}

/** The run's holds plus those of this database's holds table. */
export async function loadDatabaseHolds(run: HoldSnapshot, config: Pick<Config, 'legal_holds'>, q: Queryable, database: string): Promise<HoldSnapshot> {
  const table = config.legal_holds.check_table;
  if (!run.enabled || table === undefined || run.unavailable !== undefined) return run;
  try {
    return { ...run, holds: [...run.holds, ...(await loadCheckTableHolds(q, table, database))] };
  } catch (error) {
    return { ...run, unavailable: asUnavailable(error) };
  }
}

/**
 * Holds limited to one database, extended to the other configured names of that database
 * (hold-database-aliases.ts). Every configured database is asked, selected or not: a hold naming
 * `app` must keep its rows when only `--database app_again` runs. Read only when such a hold is
 * active. A database whose identity cannot be read (unreachable for a moment) may be anyone's
 * alias: the holds reach further for this run (fail closed), and the warning says why.
 */
export async function withHoldDatabaseAliases(options: { config: Config; secrets?: readonly string[]; now?: () => Date; logger?: Logger }, holds: HoldSnapshot): Promise<HoldSnapshot> {
  const now = (options.now ?? (() => new Date()))();
  if (!holds.enabled || !needsDatabaseAliases(holds.holds, options.config.databases.length, now)) return holds;
  const identities = new Map<string, string | undefined>();
  for (const db of options.config.databases) {
    await withDatabase({ config: options.config, ...(options.secrets === undefined ? {} : { secrets: options.secrets }) }, db, async (pool, connectProblem) => {
      identities.set(db.name, connectProblem !== undefined ? undefined : await selectDatabaseIdentity(pool).then(databaseIdentityKey, () => undefined));
    });
  }
  const unknown = unidentifiedDatabases(identities);
  if (unknown.length > 0) {
    options.logger?.warn(
      { databases: unknown },
      'could not tell which database these configured names reach: legal holds limited to one database are applied under them too for this run (fail closed)',
    );
  }
  return { ...holds, holds: addDatabaseAliases(holds.holds, identities) };
}

function asUnavailable(error: unknown): AuditlogError {
  if (error instanceof AuditlogError) return error;
  return new AuditlogError('LEGAL_HOLD_UNAVAILABLE', `legal holds could not be read (${describeError(error)}): nothing is archived, nor restored over (overwrite/upsert), until they can`, { cause: error });
}
