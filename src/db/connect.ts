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
  jit: string;
  /** Not a PostgreSQL setting: a sentinel that proves the startup options reached the server (verifyPinnedSession). */
  'auditlog.pinned_settings': string;
  statement_timeout: string;
  lock_timeout: string;
  idle_in_transaction_session_timeout: string;
  tcp_keepalives_idle: string;
  tcp_keepalives_interval: string;
  tcp_keepalives_count: string;
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
    // The archiver's statements are bounded index range scans; JIT compilation (tens to hundreds
    // of ms) costs more than they run. A legal hold's per-row EXISTS inflates the planner's cost
    // estimate past jit_above_cost (measured: a 10,000-row page under a partition hold took
    // 217 ms with JIT, 21 ms without; the progress count 253 ms against 144 ms).
    jit: 'off',
    'auditlog.pinned_settings': 'on',
    statement_timeout: `${defaults.statement_timeout_ms}`,
    lock_timeout: `${defaults.lock_timeout_ms}`,
    idle_in_transaction_session_timeout: `${defaults.idle_in_transaction_session_timeout_ms}`,
    // The server's side of a connection whose client vanished (a network partition, a client
    // given up on by its heartbeat or query deadline) stays open until TCP keepalive ends it —
    // after ~2 h 11 min at the usual defaults. Meanwhile it keeps the table's advisory lock, and
    // every later run fails LOCK_HELD against the archiver's own dead session (found by probing
    // the daemon). Probes after 30 s idle, every 10 s, 3 missed: ended within about a minute.
    // Ignored over a Unix socket.
    tcp_keepalives_idle: '30',
    tcp_keepalives_interval: '10',
    tcp_keepalives_count: '3',
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

/**
 * How much longer than statement_timeout a session waits for the server before it gives the
 * connection up (ms): long enough that a statement the server cancels reports its own SQLSTATE
 * (57014) rather than this client-side deadline.
 */
export const QUERY_DEADLINE_MARGIN_MS = 5_000;

/**
 * The client-side deadline (ms) of a session with these settings. statement_timeout only acts on
 * the server, and TCP keepalive notices nothing while the peer's kernel still acknowledges: a
 * connection that stays open but stops answering (a stalled proxy, a frozen server, a network
 * blackhole) left every query waiting forever, the run with it (found by probing: a blackhole
 * mid-run hung the daemon past SIGTERM until the network came back).
 */
export function queryDeadlineMs(settings: Pick<SessionSettings, 'statement_timeout'>): number {
  return Number(settings.statement_timeout) + QUERY_DEADLINE_MARGIN_MS;
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
    // statement_timeout only acts on the server: TCP keepalive notices a peer that vanished (no
    // more ACKs); one that stays connected but silent is the query deadline's (sessionClientClass).
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

interface SessionClientOptions {
  database: string;
  /** No answer from the server for this long (ms) while a query waits: the connection is destroyed. None: waits as long as the server takes. */
  deadlineMs?: number;
  /** The pool's clients, for abortPoolConnections and fencePool. */
  pool?: PoolState;
}

interface PoolState {
  /** Every client of the pool that is not closed yet, connecting ones included. */
  live: Set<SessionClient>;
  /** While set, no new connection is made: connecting fails with this error at once (fencePool). */
  fenced?: Error;
}

/** What the deadline and the aborts need of a client: a way to give its connection up at once. */
interface SessionClient extends pg.Client {
  abandon(error: Error): void;
  /** While above 0, queries started are not watched by the deadline (withoutQueryDeadline). */
  unwatched: number;
}

/** What the server's socket of a client is, for abandon(): node-postgres keeps it on its connection. */
type WithStream = { connection: { stream: { destroy(error?: Error): void; bytesRead?: number } } };

/**
 * A pg.Client that verifies its session (verifyPinnedSession) before anyone uses it (the pool
 * calls connect() with a callback, and a client that fails the check is closed, not handed out)
 * and, with a deadline, never waits forever on a server that stopped answering.
 *
 * The deadline watches the connection, not each query: while any query waits, the connection must
 * receive something at least every `deadlineMs`, or it is destroyed with a DB_QUERY error, which
 * every query on it (pooled or not, a COPY stream too) then fails with. A COPY that keeps
 * streaming is never cut short; a statement the server still runs is ended by its own
 * statement_timeout first — except COMMIT, which PostgreSQL runs without it: one waiting for a
 * synchronous standby longer than the deadline is given up too (found in review), and the batch's
 * outcome is then checked against the table or left for the next run to reconcile. Destroyed, not ended: ending waits for the silent peer as well. Not
 * node-postgres' query_timeout: it leaves the connection waiting (and every later query behind
 * it), and does not cover pg-copy-streams.
 */
function sessionClientClass(o: SessionClientOptions): typeof pg.Client {
  return class PinnedSessionClient extends pg.Client implements SessionClient {
    unwatched = 0;
    private waiting = 0;
    private watchdog: NodeJS.Timeout | undefined;
    private bytesSeen = -1;
    private lastHeard = 0;

    constructor(config?: string | pg.ClientConfig) {
      super(config);
      o.pool?.live.add(this);
      this.once('end', () => o.pool?.live.delete(this));
      // abandon() destroys the socket with an error, which the client emits as 'error' even while
      // it is still connecting or verifying its session, before the pool's 'connect' listener
      // exists: unheard, that crashed the process (found by the full test run: a table failing
      // while a connection was being opened). Whoever waits on the client gets the error anyway.
      this.on('error', () => undefined);
    }

    override connect(): Promise<pg.Client>;
    override connect(callback: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): void;
    override connect(callback?: ((err: Error) => void) | ((err: null, c: pg.Client) => void)): Promise<pg.Client> | void {
      const fenced = o.pool?.fenced;
      const connected = (fenced !== undefined ? Promise.reject(fenced) : super.connect())
        .then(async () => {
          try {
            await verifyPinnedSession(this, o.database);
          } catch (error) {
            await this.end().catch(() => undefined);
            throw error;
          }
          return this as pg.Client;
        })
        .catch((error: unknown) => {
          // A client that never connected never ends: it must not stay listed.
          o.pool?.live.delete(this);
          throw error;
        });
      if (callback === undefined) return connected;
      const cb = callback as (err: Error | null, c?: pg.Client) => void;
      connected.then((c) => cb(null, c), (error: Error) => cb(error));
    }

    // Every form node-postgres accepts (promise, callback, submittable), passed on unchanged.
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    override query(...args: any[]): any {
      const run = (): unknown => (pg.Client.prototype.query as (...a: unknown[]) => unknown).apply(this, args);
      if (o.deadlineMs === undefined || this.unwatched > 0) return run();
      let settled = false;
      const done = (): void => {
        if (settled) return;
        settled = true;
        if (--this.waiting === 0) this.disarm();
      };
      if (this.waiting++ === 0) this.arm();
      const first = args[0] as { submit?: unknown; once?: (event: string, listener: () => void) => void } | undefined;
      if (first !== null && typeof first === 'object' && typeof first.submit === 'function') {
        // A submittable (a pg-copy-streams COPY): a stream, done when it ends or fails.
        for (const event of ['end', 'finish', 'error', 'close']) first.once?.(event, done);
        try {
          return run();
        } catch (error) {
          done();
          throw error;
        }
      }
      const last = args[args.length - 1];
      if (typeof last === 'function') {
        args[args.length - 1] = (...result: unknown[]) => {
          done();
          (last as (...r: unknown[]) => void)(...result);
        };
        return run();
      }
      try {
        const out = run() as Promise<unknown>;
        out.then(done, done);
        return out;
      } catch (error) {
        done();
        throw error;
      }
    }

    /** Destroys the connection: every query on it fails with `error`, at once. */
    abandon(error: Error): void {
      this.disarm();
      destroyConnection(this, error);
    }

    private arm(): void {
      this.bytesSeen = this.bytesRead();
      this.lastHeard = performance.now();
      // Checked a few times per deadline, so it expires within a tenth of it past the mark.
      this.watchdog = setInterval(() => this.check(), Math.max(50, Math.floor(o.deadlineMs! / 10)));
      // Never what keeps a process alive: the query waiting is.
      this.watchdog.unref();
    }

    private disarm(): void {
      clearInterval(this.watchdog);
      this.watchdog = undefined;
    }

    private check(): void {
      const read = this.bytesRead();
      // Something arrived (a result, COPY data): the server is alive; the deadline starts over.
      if (read !== this.bytesSeen) {
        this.bytesSeen = read;
        this.lastHeard = performance.now();
        return;
      }
      if (performance.now() - this.lastHeard < o.deadlineMs!) return;
      const ms = o.deadlineMs!;
      this.abandon(
        new AuditlogError(
          'DB_QUERY',
          `no answer from the database "${o.database}" within ${ms} ms (statement_timeout plus ${QUERY_DEADLINE_MARGIN_MS} ms): the connection was given up — check the network and the server (a stalled proxy or firewall keeps connections open without forwarding; a COMMIT waiting for a synchronous standby that does not answer also sends nothing: statement_timeout does not apply to COMMIT)`,
          { details: { database: o.database, deadline_ms: ms } },
        ),
      );
    }

    private bytesRead(): number {
      return (this as unknown as WithStream).connection.stream.bytesRead ?? 0;
    }
  };
}

/**
 * A connection of its own, outside the pool (the table's lock session, restore's sessions),
 * verified on connect. With `deadlineMs`, it never waits forever on a silent server (see
 * sessionClientClass); a statement that legitimately runs silent for longer goes through
 * withoutQueryDeadline.
 */
export function createClient(options: PoolOptions & { deadlineMs?: number }): pg.Client {
  const Client = sessionClientClass({ database: options.database.name, ...(options.deadlineMs === undefined ? {} : { deadlineMs: options.deadlineMs }) });
  const client = new Client(buildClientConfig(options));
  client.on('error', (error) => {
    if (!deliberateErrors.has(error) && !abandonedClients.has(client)) options.onBackgroundError?.(error);
  });
  return client;
}

/**
 * Connects the lock session and keeps a database's idle_session_timeout from ending it: it sits
 * idle between heartbeats, and its end is a lost lock (found by probing: LOCK_LOST on every run
 * with idle_session_timeout = 300ms). Not a startup option: PostgreSQL before 14 refuses a
 * connection that names a parameter it does not know.
 */
export async function connectLockClient(options: PoolOptions): Promise<pg.Client> {
  // With the deadline: a heartbeat or a release that waits on a silent server must end.
  const client = createClient({ ...options, deadlineMs: queryDeadlineMs(options.settings) });
  await client.connect();
  try {
    await keepIdleSessionOpen(client);
  } catch (error) {
    await client.end().catch(() => undefined);
    throw error;
  }
  return client;
}

/**
 * Runs `fn` with the client's query deadline off for the queries it starts: for a statement that
 * runs without statement_timeout on purpose (restore's index rebuild), during which PostgreSQL
 * sends nothing for as long as it works, so that silence cannot be told from a dead link. Only
 * TCP keepalive then notices a vanished peer; keep `fn` to that statement alone. A client
 * without a deadline, or not made here, runs `fn` as it is.
 */
export async function withoutQueryDeadline<T>(client: pg.Client, fn: () => Promise<T>): Promise<T> {
  const c = client as Partial<SessionClient>;
  if (typeof c.unwatched !== 'number') return fn();
  c.unwatched++;
  try {
    return await fn();
  } finally {
    c.unwatched--;
  }
}

/** Pure: whether `error` is the query deadline's (a connection given up as silent), not the server's. */
export function isQueryDeadlineError(error: unknown): error is AuditlogError {
  return isAuditlogError(error) && error.code === 'DB_QUERY' && typeof error.details.deadline_ms === 'number';
}

/** Clears idle_session_timeout for a session that holds a lock while idle (see connectLockClient). */
export async function keepIdleSessionOpen(client: Pick<pg.Client, 'query'>): Promise<void> {
  await client.query(`SELECT pg_catalog.set_config('idle_session_timeout', '0', false) WHERE pg_catalog.current_setting('server_version_num')::int >= 140000`);
}

/** The clients of each pool createPool made, for abortPoolConnections and fencePool. */
const poolStates = new WeakMap<pg.Pool, PoolState>();

export function createPool(options: PoolOptions): pg.Pool {
  const state: PoolState = { live: new Set() };
  const Client = sessionClientClass({ database: options.database.name, deadlineMs: queryDeadlineMs(options.settings), pool: state });
  const pool = new pg.Pool({ ...buildClientConfig(options), Client, max: options.database.connection_pool_size, idleTimeoutMillis: 30_000 });
  poolStates.set(pool, state);
  // An idle client killed by pg_terminate_backend emits 'error' on the pool; unhandled, it would
  // crash the process. One we destroyed ourselves (a lock refused or lost, a stop) is not reported:
  // it logged a "database connection error" carrying the lock or stop message (found by probing).
  pool.on('error', (error) => {
    if (!deliberateErrors.has(error)) options.onBackgroundError?.(error);
  });
  // A checked-out client killed mid-query emits 'error' on itself, which pg-pool does not listen
  // for while the client is out: unheard, it would crash the process. The query in flight rejects
  // with the same error, and its caller handles it; this only keeps the event from going unheard,
  // for every caller that checks a client out (page reads, hold and audit queries, deletes).
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/**
 * Destroys every connection of a pool made by createPool — checked out, idle or still connecting:
 * each query waiting on one fails with `error` at once, a connection attempt too. For work that
 * must stop now rather than when a silent server would answer (a table whose lock is lost, a
 * health check past its timeout). The pool stays usable: it opens new connections on demand.
 */
export function abortPoolConnections(pool: pg.Pool, error: Error): number {
  const state = poolStates.get(pool);
  if (state === undefined) return 0;
  const clients = [...state.live];
  deliberateErrors.add(error);
  for (const client of clients) client.abandon(error);
  return clients.length;
}

/**
 * abortPoolConnections, and until the returned function is called no new connection is made
 * either: each attempt fails with `error` at once instead of waiting out the connect timeout on a
 * server that accepts and never answers (a table whose lock is lost reads ahead and opens delete
 * transactions: none of that may start now).
 */
export function fencePool(pool: pg.Pool, error: Error): () => void {
  const state = poolStates.get(pool);
  if (state === undefined) return () => undefined;
  state.fenced = error;
  abortPoolConnections(pool, error);
  return () => {
    if (state.fenced === error) delete state.fenced;
  };
}

/**
 * Errors this process destroyed connections with on purpose (abandonClient: a lock refused or
 * lost, a stop, a health check past its timeout): the 'error' event each causes on the client or
 * pool is our own doing, not a connection problem to report as one.
 */
const deliberateErrors = new WeakSet<Error>();

/** Destroys a client's connection at once: every query waiting on it fails with `error` (or "Connection terminated"). */
const abandonedClients = new WeakSet<pg.Client>();
export function abandonClient(client: pg.Client, error?: Error): void {
  if (error !== undefined) deliberateErrors.add(error);
  // Its socket's close then reports "Connection terminated unexpectedly" as a second error: ours too.
  abandonedClients.add(client);
  destroyConnection(client, error);
}

/** abandonClient without the mark: also for the query deadline, whose error is a real connection problem. */
function destroyConnection(client: pg.Client, error?: Error): void {
  (client as unknown as WithStream).connection.stream.destroy(error);
}

/**
 * Runs `fn` with the pool's fence (fencePool) lifted: for the one check that must still reach the
 * database after a lost lock — whether a COMMIT whose answer was lost committed.
 */
export async function withoutFence<T>(pool: pg.Pool, fn: () => Promise<T>): Promise<T> {
  const state = poolStates.get(pool);
  const fenced = state?.fenced;
  if (state === undefined || fenced === undefined) return fn();
  delete state.fenced;
  try {
    return await fn();
  } finally {
    state.fenced ??= fenced;
  }
}

/**
 * Ends a client, destroying its connection when the server does not see it off within `graceMs`:
 * a graceful end waits for the peer, and a silent one never answers.
 */
export async function endClient(client: pg.Client, graceMs = 2_000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => {
    timer = setTimeout(() => resolve('late'), graceMs);
  });
  try {
    const outcome = await Promise.race([client.end().catch(() => undefined), late]);
    if (outcome === 'late') abandonClient(client);
  } finally {
    clearTimeout(timer);
  }
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
