/**
 * Where table state and checkpoints are kept: as small JSON documents in an ObjectStore (the
 * archive's bucket or directory, or a local checkpoint directory), or, for table state, as rows
 * of a table in the archived database (`watermarks.backend: database`).
 */
import { checkpointKey, tableStateKey } from '../core/archive-layout.js';
import { quoteQualified } from '../db/quote-ident.js';
import type { Queryable } from '../db/queryable.js';
import type { Config } from '../config/schema.js';
import { localSchema } from '../config/schema.js';
import { LocalObjectStore } from '../storage/local-object-store.js';
import type { ObjectStore } from '../storage/object-store.js';
import { parseCheckpoint, parseTableState, type Checkpoint, type TableId, type TableState } from './table-state.js';

export interface TableStateStore {
  /** For messages: where the state lives. */
  readonly description: string;
  /** For messages: where the state of one table lives (a path, an object URL, a row). */
  locate(id: TableId): string;
  get(id: TableId): Promise<TableState | undefined>;
  put(state: TableState): Promise<void>;
  /** True when there was a state to delete. */
  delete(id: TableId): Promise<boolean>;
}

export interface CheckpointStore {
  readonly description: string;
  locate(id: TableId): string;
  get(id: TableId): Promise<Checkpoint | undefined>;
  put(checkpoint: Checkpoint): Promise<void>;
  delete(id: TableId): Promise<void>;
}

const json = (doc: unknown): Buffer => Buffer.from(JSON.stringify(doc, null, 1) + '\n', 'utf8');

export class ObjectTableStateStore implements TableStateStore {
  readonly description: string;
  constructor(private readonly store: ObjectStore) {
    this.description = `${store.description} (_auditlog/state/)`;
  }
  locate(id: TableId): string {
    return `${this.store.description}${tableStateKey(id)}`;
  }
  async get(id: TableId): Promise<TableState | undefined> {
    const body = await this.store.get(tableStateKey(id));
    return body === undefined ? undefined : parseTableState(body.toString('utf8'), id, this.locate(id));
  }
  async put(state: TableState): Promise<void> {
    await this.store.put(tableStateKey(state), json(state), { contentType: 'application/json' });
  }
  async delete(id: TableId): Promise<boolean> {
    const existed = (await this.store.head(tableStateKey(id))) !== undefined;
    await this.store.delete(tableStateKey(id));
    return existed;
  }
}

export class ObjectCheckpointStore implements CheckpointStore {
  readonly description: string;
  constructor(private readonly store: ObjectStore) {
    this.description = store.description;
  }
  locate(id: TableId): string {
    return `${this.store.description}${checkpointKey(id)}`;
  }
  async get(id: TableId): Promise<Checkpoint | undefined> {
    const body = await this.store.get(checkpointKey(id));
    return body === undefined ? undefined : parseCheckpoint(body.toString('utf8'), id, this.locate(id));
  }
  async put(checkpoint: Checkpoint): Promise<void> {
    await this.store.put(checkpointKey(checkpoint), json(checkpoint), { contentType: 'application/json' });
  }
  async delete(id: TableId): Promise<void> {
    await this.store.delete(checkpointKey(id));
  }
}

/**
 * One row per table in `<schema>.<table>` of the archived database. The archiver creates the
 * table on first write unless it exists already (an operator may create it in advance and grant
 * the archiver's role only SELECT, INSERT, UPDATE, DELETE on it: docs/operations.md); reading a
 * database where it does not exist yet means "no state".
 */
export class DatabaseTableStateStore implements TableStateStore {
  readonly description: string;
  private readonly qualified: string;
  private created = false;

  constructor(
    private readonly q: Queryable,
    private readonly schema: string,
    private readonly table: string,
  ) {
    this.qualified = quoteQualified(schema, table);
    this.description = `table ${schema}.${table}`;
  }

  locate(id: TableId): string {
    return `${this.description}, row (${id.database}, ${id.schema}, ${id.table})`;
  }

  async get(id: TableId): Promise<TableState | undefined> {
    if (!(await this.exists())) return undefined;
    const r = await this.q.query<{ state: string }>(
      `SELECT state::text AS state FROM ${this.qualified} WHERE database_name = $1 AND schema_name = $2 AND table_name = $3`,
      [id.database, id.schema, id.table],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : parseTableState(row.state, id, this.locate(id));
  }

  async put(state: TableState): Promise<void> {
    await this.ensureTable();
    await this.q.query(
      `INSERT INTO ${this.qualified} AS w (database_name, schema_name, table_name, state, updated_at) VALUES ($1, $2, $3, $4::jsonb, now())
       ON CONFLICT (database_name, schema_name, table_name) DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at`,
      [state.database, state.schema, state.table, JSON.stringify(state)],
    );
  }

  async delete(id: TableId): Promise<boolean> {
    if (!(await this.exists())) return false;
    const r = await this.q.query(`DELETE FROM ${this.qualified} WHERE database_name = $1 AND schema_name = $2 AND table_name = $3`, [
      id.database,
      id.schema,
      id.table,
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  private async exists(): Promise<boolean> {
    if (this.created) return true;
    // As text: the archiver's sessions parse no value (connect.ts), so a boolean arrives as 't'
    // and a `=== true` check never held — the stored state was never read (found by probing).
    const r = await this.q.query<{ found: string }>('SELECT (to_regclass($1) IS NOT NULL)::text AS found', [this.qualified]);
    return r.rows[0]?.found === 'true';
  }

  private async ensureTable(): Promise<void> {
    if (this.created) return;
    // A table created in advance needs no CREATE: a role granted only DML on it has no CREATE on
    // the schema, and CREATE TABLE IF NOT EXISTS checks that privilege before it finds the table
    // (42501: every save failed, found by probing).
    if (await this.exists()) {
      this.created = true;
      return;
    }
    try {
      await this.q.query(
        `CREATE TABLE IF NOT EXISTS ${this.qualified} (
           database_name text NOT NULL, schema_name text NOT NULL, table_name text NOT NULL,
           state jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(),
           PRIMARY KEY (database_name, schema_name, table_name))`,
      );
    } catch (error) {
      // Two archivers creating it at once: one wins, the other sees a duplicate catalog row (or,
      // without CREATE on the schema, a permission error although the table is now there).
      const code = (error as { code?: string }).code;
      if (code !== '23505' && code !== '42P07' && !(code === '42501' && (await this.exists()))) throw error;
    }
    this.created = true;
  }
}

export interface StateStores {
  tableState: TableStateStore;
  checkpoints: CheckpointStore;
}

/** The stores the configuration names, for one database (`q` reaches it; used by `watermarks.backend: database`). */
export function openStateStores(config: Pick<Config, 'watermarks' | 'checkpoints'>, store: ObjectStore, q: Queryable): StateStores {
  const tableState: TableStateStore =
    config.watermarks.backend === 'database'
      ? new DatabaseTableStateStore(q, config.watermarks.schema, config.watermarks.table)
      : new ObjectTableStateStore(store);
  const checkpoints =
    config.checkpoints.backend === 'local'
      ? new ObjectCheckpointStore(new LocalObjectStore(localSchema.parse({ path: config.checkpoints.local_dir })))
      : new ObjectCheckpointStore(store);
  return { tableState, checkpoints };
}
