/**
 * Which database this is, for pending markers (src/archive/pending-marker.ts): the cluster's
 * system identifier, the database name and its oid (which a rename keeps). Object keys name
 * databases by their config name, so two configurations pointing one name at two servers would
 * otherwise share markers.
 */
import type { Queryable } from './queryable.js';
import type { MarkerOrigin } from '../archive/pending-marker.js';

export async function selectDatabaseIdentity(q: Queryable): Promise<MarkerOrigin> {
  const row = (await q.query<{ db: string; oid: string }>('SELECT d.datname AS db, d.oid::text AS oid FROM pg_catalog.pg_database d WHERE d.datname = pg_catalog.current_database()')).rows[0]!;
  const named = { database: row.db, database_oid: row.oid };
  try {
    const r = await q.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_catalog.pg_control_system()');
    return { system_identifier: r.rows[0]?.id ?? null, ...named };
  } catch {
    // Some managed services revoke pg_control_system(): the database name still tells most mix-ups apart.
    return { system_identifier: null, ...named };
  }
}
