/**
 * Connection pools for the archiver's own sessions. Every session is pinned to the settings the
 * encoding relies on (DESIGN.md §5b) and to the timeouts that bound its impact (I5), through the
 * startup `options` packet so no statement ever runs before they apply.
 */
import pg from 'pg';
import type { DatabaseConfig, DefaultsConfig } from '../config/schema.js';
import { AuditlogError, describeError, isAuditlogError } from '../core/errors.js';
import { redactSecrets } from '../config/mask-secrets.js';

export interface SessionSettings {
  TimeZone: string;
  DateStyle: string;
  IntervalStyle: string;
  extra_float_digits: string;
  bytea_output: string;
  search_path: string;
  standard_conforming_strings: string;
  array_nulls: string;
  xmloption: string;
  default_transaction_isolation: string;
  row_security: string;
  /** Not a PostgreSQL setting: a sentinel that proves the startup options reached the server (verifyPinnedSession). */
  'auditlog.pinned_settings': string;
  statement_timeout: string;
  lock_timeout: string;
  idle_in_transaction_session_timeout: string;
}

export function buildSessionSettings(defaults: Pick<DefaultsConfig, 'statement_timeout_ms' | 'lock_timeout_ms' | 'idle_in_transaction_session_timeout_ms'>): SessionSettings {
  return {
    TimeZone: 'UTC',
    DateStyle: 'ISO, YMD',
    IntervalStyle: 'postgres',
    extra_float_digits: '3',
    bytea_output: 'hex',
    search_path: 'pg_catalog',
    // A database or role may set any of these; each changed what the SQL means (found by probing
    // non-default settings): with standard_conforming_strings off a backslash in a literal is an
    // escape (the array check's pattern lost its meaning: arrays archived without their bounds);
    // with array_nulls off a restored NULL element became the string "NULL"; xmloption document
    // refused restoring xml fragments; serializable made the archiver's own concurrent
    // transactions fail each other. (idle_session_timeout, PostgreSQL 14+, is cleared on the lock
    // session only: see connectLockClient.)
    standard_conforming_strings: 'on',
    array_nulls: 'on',
    xmloption: 'content',
    default_transaction_isolation: 'read committed',
    // A row-level security policy that applies to the archiver's role would silently leave rows
    // out: of a page (never archived, retention unenforced), of a delete (archived, then rewritten
    // out of their object on every run) or of the legal-holds table (held rows archived and
    // deleted). With row_security off, such a query fails instead of being filtered (found by
    // probing); roles that bypass RLS (superuser, BYPASSRLS, a non-FORCE owner) are unaffected.
    // table-refusals.ts says so up front for each archived table, restore for its target.
    row_security: 'off',
    'auditlog.pinned_settings': 'on',
    statement_timeout: `${defaults.statement_timeout_ms}`,
    lock_timeout: `${defaults.lock_timeout_ms}`,
    idle_in_transaction_session_timeout: `${defaults.idle_in_transaction_session_timeout_ms}`,
  };
}

/** `-c key=value` pairs for the startup packet; spaces and backslashes escaped as libpq expects. */
export function formatStartupOptions(settings: SessionSettings): string {
  return Object.entries(settings)
    .map(([key, value]) => `-c ${key}=${value.replace(/\\/g, '\\\\').replace(/ /g, '\\ ')}`)
    .join(' ');
}

/** Every value arrives as the server's text: no JS number or Date ever touches an archived value. */
const textTypes = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export interface PoolOptions {
  database: DatabaseConfig;
  applicationName: string;
  settings: SessionSettings;
  onBackgroundError?: (error: Error) => void;
}

function buildClientConfig(options: PoolOptions): pg.ClientConfig {
  const db = options.database;
  const url = db.url === undefined ? undefined : splitUrlOptions(db.url);
  const base: pg.ClientConfig =
    url !== undefined ? { connectionString: url.connectionString } : { host: db.host, port: db.port, user: db.user, password: db.password, database: db.dbname };
  return {
    ...base,
    ...(db.ssl === undefined ? {} : { ssl: db.ssl }),
    application_name: options.applicationName,
    // The URL's own `options` first: where a key repeats, the later -c wins, so the pinned
    // settings always apply. node-postgres would otherwise let the URL's options replace them all
    // (found by probing: ?options=-c TimeZone=… archived local times under metadata saying UTC).
    options: [url?.options, formatStartupOptions(options.settings)].filter((o) => o !== undefined && o !== '').join(' '),
    types: textTypes,
    connectionTimeoutMillis: 15_000,
    // statement_timeout only acts on the server: TCP keepalive notices a peer that vanished.
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

/** The connection URL without its `options` parameter, and that parameter's value. */
export function splitUrlOptions(raw: string): { connectionString: string; options?: string } {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Not a URL node-postgres' parser would read differently (e.g. a bare socket path): as given.
    return { connectionString: raw };
  }
  const options = url.searchParams.get('options');
  if (options === null) return { connectionString: raw };
  url.searchParams.delete('options');
  return { connectionString: url.toString(), options };
}

/**
 * Throws DB_SESSION unless the session runs with the pinned settings: a connection pooler that
 * drops the startup `options` (PgBouncer needs ignore_startup_parameters = options to accept them
 * at all) left every setting at the database's values — real values archived with fewer digits,
 * intervals and bytea in other formats, under metadata saying otherwise, and no lock_timeout
 * (found by probing). The sentinel is a placeholder setting only the options packet sets.
 */
export async function verifyPinnedSession(client: Pick<pg.Client, 'query'>, database: string): Promise<void> {
  const r = await client.query<{ pinned: string | null }>(`SELECT pg_catalog.current_setting('auditlog.pinned_settings', true) AS pinned`);
  if (r.rows[0]?.pinned === 'on') return;
  throw new AuditlogError(
    'DB_SESSION',
    `connections to database "${database}" do not get the archiver's session settings: the startup "options" parameter did not reach PostgreSQL (a connection pooler such as PgBouncer with ignore_startup_parameters = options?), so values could be archived in another format and lock_timeout/statement_timeout would not apply; connect the archiver to PostgreSQL directly (docs/operations.md, connection poolers)`,
    { details: { database } },
  );
}

/**
 * A pg.Client that verifies its session (verifyPinnedSession) before anyone uses it: the pool
 * calls connect() with a callback, and a client that fails the check is closed, not handed out.
 */
function pinnedClientClass(database: string): typeof pg.Client {
  return class PinnedSessionClient extends pg.Client {
    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
      const connected = super.connect().then(async () => {
        try {
          await verifyPinnedSession(this, database);
        } catch (error) {
          await this.end().catch(() => undefined);
          throw error;
        }
        return this as pg.Client;
      });
      if (callback === undefined) return connected;
      const cb = callback as (err: Error | null, c?: pg.Client) => void;
      connected.then((c) => cb(null, c), (error: Error) => cb(error));
    }
  };
}

/** A connection of its own, outside the pool (the table's lock session, restore's session), verified on connect. */
export function createClient(options: PoolOptions): pg.Client {
  const Client = pinnedClientClass(options.database.name);
  const client = new Client(buildClientConfig(options));
  client.on('error', (error) => options.onBackgroundError?.(error));
  return client;
}

/**
 * Connects the lock session and keeps a database's idle_session_timeout from ending it: it sits
 * idle between heartbeats, and its end is a lost lock (found by probing: LOCK_LOST on every run
 * with idle_session_timeout = 300ms). Not a startup option: PostgreSQL before 14 refuses a
 * connection that names a parameter it does not know.
 */
export async function connectLockClient(options: PoolOptions): Promise<pg.Client> {
  const client = createClient(options);
  await client.connect();
  try {
    await keepIdleSessionOpen(client);
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  return client;
}

/** Clears idle_session_timeout for a session that holds a lock while idle (see connectLockClient). */
export async function keepIdleSessionOpen(client: Pick<pg.Client, 'query'>): Promise<void> {
  await client.query(`SELECT pg_catalog.set_config('idle_session_timeout', '0', false) WHERE pg_catalog.current_setting('server_version_num')::int >= 140000`);
}

export function createPool(options: PoolOptions): pg.Pool {
  const pool = new pg.Pool({ ...buildClientConfig(options), Client: pinnedClientClass(options.database.name), max: options.database.connection_pool_size, idleTimeoutMillis: 30_000 });
  // An idle client killed by pg_terminate_backend emits 'error' on the pool; unhandled, it would crash the process.
  pool.on('error', (error) => options.onBackgroundError?.(error));
  // A checked-out client killed mid-query emits 'error' on itself, which pg-pool does not listen
  // for while the client is out: unheard, it would crash the process. The query in flight rejects
  // with the same error, and its caller handles it; this only keeps the event from going unheard,
  // for every caller that checks a client out (page reads, hold and audit queries, deletes).
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/** Where a connection goes, for messages: host, port and database name only, never the user's password. */
export function describeDatabase(db: DatabaseConfig): string {
  if (db.url !== undefined) {
    try {
      const u = new URL(db.url);
      return `${u.hostname || 'localhost'}:${u.port || '5432'}${u.pathname || ''}`;
    } catch {
      return `database "${db.name}"`;
    }
  }
  return `${db.host ?? 'localhost'}:${db.port ?? 5432}/${db.dbname ?? ''}`;
}

export async function checkConnection(pool: pg.Pool, db: DatabaseConfig, secrets: readonly string[] = []): Promise<void> {
  try {
    await pool.query('SELECT 1');
  } catch (error) {
    throw toConnectError(error, db, secrets);
  }
}

export function toConnectError(error: unknown, db: DatabaseConfig, secrets: readonly string[] = []): AuditlogError {
  if (isAuditlogError(error)) return error;
  const message = redactSecrets(describeError(error), secrets);
  return new AuditlogError(
    'DB_CONNECT',
    `cannot connect to database "${db.name}" at ${describeDatabase(db)}: ${message} (check databases[].url/host, that the server is running, and credentials)`,
    { details: { database: db.name }, cause: error },
  );
}
