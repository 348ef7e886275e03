/**
 * Which database this is, for pending markers (src/archive/pending-marker.ts): the cluster's
 * system identifier and the database name. Object keys name databases by their config name, so
 * two configurations pointing one name at two servers would otherwise share markers.
 */
import type { Queryable } from './queryable.js';
import type { MarkerOrigin } from '../archive/pending-marker.js';

export async function selectDatabaseIdentity(q: Queryable): Promise<MarkerOrigin> {
  const database = (await q.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
  try {
    const r = await q.query<{ id: string }>('SELECT system_identifier::text AS id FROM pg_catalog.pg_control_system()');
    return { system_identifier: r.rows[0]?.id ?? null, database };
  } catch {
    // Some managed services revoke pg_control_system(): the database name still tells most mix-ups apart.
    return { system_identifier: null, database };
  }
}
