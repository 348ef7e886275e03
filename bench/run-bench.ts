/**
 * `npm run bench [-- --rows N --batch-size N --keep --baseline-only]`: the DESIGN.md §7 benchmark.
 *
 * Seeds the §7 audit table in a scratch database, then times, from the same starting state:
 *   baseline: `psql \copy (SELECT row_to_json(t) …) | gzip -1 > file` followed by one DELETE;
 *   archive:  `./bin/auditlog archive` against a local s3rver, as a child process.
 * Both are checked (rows left = the newer rows) and reported side by side. Then the archive just
 * written is validated (`./bin/auditlog validate`, deep and shallow), which must find it clean.
 * This is a script, not a test: figures vary with the machine, so nothing here asserts a speed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createGunzip } from 'node:zlib';
import pg from 'pg';
import { isCompression } from '../src/core/compression.js';
import { describeError } from '../src/core/errors.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../src/db/embedded-postgres.js';
import { createScratchDatabase, isPostgresReachable, type ScratchDatabase } from '../src/db/scratch-database.js';
import { seedAuditTable } from '../src/demo/seed-audit-table.js';

const RETENTION_DAYS = 365;
const TABLE = 'public.audit_log';
const PRISTINE = 'bench.audit_log_pristine';
/** Both runs use the database clock, as a user's script would; the seed keeps a margin around the cutoff. */
const OLD_ROWS = `created_at < now() - interval '${RETENTION_DAYS} days'`;
const LOCAL_SERVER_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
const BUCKET = 'bench-archive';
const RSS_POLL_MS = 50;

class BenchError extends Error {}

interface BenchOptions {
  rows: number;
  spanDays: number;
  /** `defaults:` of the generated config (batch_size, compression, compression_level), when given. */
  toolDefaults: Record<string, number | string>;
  keep: boolean;
  baselineOnly: boolean;
  storages: Storage[];
  restore: boolean;
}

type Storage = 's3rver' | 'local';

interface RunResult {
  name: string;
  seconds: number;
  rowsArchived: number;
  outputBytes: number | undefined;
  peakRssMb: number | undefined;
  breakdown: string;
}

interface ValidateResult {
  name: string;
  seconds: number;
  objects: number;
  rows: number;
  storedBytes: number;
  peakRssMb: number | undefined;
}

interface Workload {
  oldRows: number;
  newRows: number;
  jsonBytes: number;
}

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      rows: { type: 'string', default: '1000000' },
      'span-days': { type: 'string', default: '730' },
      'batch-size': { type: 'string' },
      compression: { type: 'string' },
      'compression-level': { type: 'string' },
      keep: { type: 'boolean', default: false },
      'baseline-only': { type: 'boolean', default: false },
      storage: { type: 'string', default: 's3rver,local' },
      'skip-restore': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(
      'usage: npm run bench -- [--rows N] [--span-days N] [--batch-size N] [--keep] [--baseline-only]\n' +
        '  --rows N         rows to seed, half older than the 365-day retention (default 1000000)\n' +
        '  --span-days N    days the rows span before now (default 730; more than 365). A batch never\n' +
        '                   spans two UTC days, so this sets the rows per day and thus the batch sizes\n' +
        '  --batch-size N   archive batch size (default: the tool\'s default)\n' +
        '  --compression C  codec of the archive: gzip or zstd (default: the tool\'s default, gzip)\n' +
        '  --compression-level N  level of that codec: gzip 1-9, zstd 1-19 (default: the tool\'s default for it)\n' +
        '  --keep           keep the scratch database (its URL is printed)\n' +
        '  --baseline-only  time only the psql | gzip + DELETE baseline\n' +
        '  --storage LIST   archive targets to time, comma-separated: s3rver (an S3-compatible server on\n' +
        '                   this machine, sharing its CPUs), local (a directory) (default s3rver,local)\n' +
        '  --skip-restore   do not time restore (by default the local archive is restored into an empty\n' +
        '                   table and into one holding half of its rows, against psql \\copy FROM)\n',
    );
    process.exit(0);
  }
  const rows = parsePositiveInt('--rows', values.rows);
  const spanDays = parsePositiveInt('--span-days', values['span-days']);
  if (spanDays <= RETENTION_DAYS + 1) throw new BenchError(`--span-days: expected more than ${RETENTION_DAYS + 1}, got ${spanDays}`);
  const toolDefaults: Record<string, number | string> = {};
  if (values.compression !== undefined) {
    if (!isCompression(values.compression)) throw new BenchError(`--compression: expected gzip or zstd, got "${values.compression}"`);
    toolDefaults.compression = values.compression;
  }
  if (values['batch-size'] !== undefined) toolDefaults.batch_size = parsePositiveInt('--batch-size', values['batch-size']);
  if (values['compression-level'] !== undefined) toolDefaults.compression_level = parsePositiveInt('--compression-level', values['compression-level']);
  const storages = values.storage.split(',').map((v) => v.trim());
  for (const v of storages) if (v !== 's3rver' && v !== 'local') throw new BenchError(`--storage: expected s3rver and/or local, got "${v}"`);
  return { rows, spanDays, toolDefaults, keep: values.keep, baselineOnly: values['baseline-only'], storages: storages as Storage[], restore: !values['skip-restore'] };
}

function parsePositiveInt(flag: string, raw: string): number {
  const value = Number(raw.replace(/_/g, ''));
  if (!Number.isSafeInteger(value) || value < 1) throw new BenchError(`${flag}: expected a positive integer, got "${raw}"`);
  return value;
}

function checkPrerequisites(options: BenchOptions): void {
  for (const tool of ['psql', 'gzip', 'bash']) {
    if (spawnSync(tool, ['--version'], { stdio: 'ignore' }).status !== 0) {
      throw new BenchError(`\`${tool}\` is not on PATH: the baseline is a psql | gzip pipeline run by bash; install it (Debian: apt-get install postgresql-client gzip bash)`);
    }
  }
  if (options.baselineOnly) return;
  if (!existsSync(join(repoRoot, 'bin', 'auditlog'))) throw new BenchError(`${join(repoRoot, 'bin', 'auditlog')} is missing: run the bench from a checkout of the repository`);
  if (!existsSync(join(repoRoot, 'dist', 'src', 'cli', 'main.js'))) {
    throw new BenchError(`${join(repoRoot, 'dist', 'src', 'cli', 'main.js')} is missing: the CLI is not built, run \`npm run build\` first`);
  }
}

async function chooseServer(cleanups: Array<() => Promise<void>>): Promise<string> {
  const fromEnv = process.env.DATABASE_URL;
  if (fromEnv !== undefined && fromEnv !== '') {
    log('using the server in DATABASE_URL');
    return fromEnv;
  }
  if (await isPostgresReachable(LOCAL_SERVER_URL, 1_000)) {
    log('using PostgreSQL at 127.0.0.1:5432');
    return LOCAL_SERVER_URL;
  }
  log('no PostgreSQL at DATABASE_URL or 127.0.0.1:5432: starting an embedded one (stopped and deleted at the end, --keep or not)');
  const dataDir = await mkdtemp(join(tmpdir(), 'auditlog-bench-pg-'));
  const server: EmbeddedPostgres = await startEmbeddedPostgres({ dataDir, persistent: false });
  cleanups.push(() => server.stop());
  return server.url;
}

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => undefined);
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

/**
 * The same physical starting point for every run: fresh heap and indexes, statistics, visibility
 * map and hint bits set (so neither run pays for the other's first read), and a checkpoint so
 * neither run absorbs the restore's dirty pages.
 */
async function restoreTable(url: string): Promise<void> {
  await withClient(url, async (client) => {
    await client.query(`TRUNCATE ${TABLE}`);
    await client.query(`INSERT INTO ${TABLE} SELECT * FROM ${PRISTINE} ORDER BY id`);
    await client.query(`REINDEX TABLE ${TABLE}`);
    await client.query(`VACUUM (ANALYZE) ${TABLE}`);
    await client.query('CHECKPOINT').catch((error: unknown) => log(`CHECKPOINT skipped (${describeError(error)})`));
  });
}

async function measureWorkload(url: string): Promise<Workload> {
  return withClient(url, async (client) => {
    const result = await client.query<{ old_rows: string; new_rows: string; json_bytes: string | null }>(
      `SELECT count(*) FILTER (WHERE ${OLD_ROWS}) AS old_rows,
              count(*) FILTER (WHERE NOT (${OLD_ROWS})) AS new_rows,
              sum(octet_length(row_to_json(t)::text)) FILTER (WHERE ${OLD_ROWS}) AS json_bytes
         FROM ${TABLE} t`,
    );
    const row = result.rows[0];
    return { oldRows: Number(row?.old_rows ?? 0), newRows: Number(row?.new_rows ?? 0), jsonBytes: Number(row?.json_bytes ?? 0) };
  });
}

async function checkRowsLeft(url: string, workload: Workload, run: string): Promise<void> {
  const counts = await withClient(url, async (client) => {
    const result = await client.query<{ total: string; old: string }>(`SELECT count(*) AS total, count(*) FILTER (WHERE ${OLD_ROWS}) AS old FROM ${TABLE}`);
    return { total: Number(result.rows[0]?.total ?? -1), old: Number(result.rows[0]?.old ?? -1) };
  });
  if (counts.total !== workload.newRows || counts.old !== 0) {
    throw new BenchError(`${run}: expected ${workload.newRows} rows left and none older than the retention, found ${counts.total} rows, ${counts.old} old`);
  }
}

interface ProcessOutcome {
  seconds: number;
  code: number | null;
  stdout: string;
  stderr: string;
  peakRssKb: number | undefined;
}

/**
 * Peak RSS: the kernel's high-water mark (VmHWM) of the child, sampled every RSS_POLL_MS. It is
 * monotonic, so only growth in the last sampling interval before exit can be missed. Polling works
 * without extra tools (GNU time is often absent) and sees the real process: bin/auditlog's
 * `#!/usr/bin/env node` execs node in place, keeping the pid.
 */
function runTimed(command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string; trackRss?: boolean } = {}): Promise<ProcessOutcome> {
  return new Promise((resolvePromise, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-20_000)));
    let peakRssKb: number | undefined;
    const sample = (): void => {
      if (child.pid === undefined) return;
      try {
        const match = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
        if (match?.[1] !== undefined) peakRssKb = Math.max(peakRssKb ?? 0, Number(match[1]));
      } catch {
        // The process is between exit and reaping, or /proc is absent (not Linux): keep the last sample.
      }
    };
    const timer = options.trackRss === true ? setInterval(sample, RSS_POLL_MS) : undefined;
    child.on('error', (error) => {
      clearInterval(timer);
      reject(new BenchError(`cannot run ${command}: ${error.message}`));
    });
    child.on('close', (code) => {
      clearInterval(timer);
      resolvePromise({ seconds: Number(process.hrtime.bigint() - started) / 1e9, code, stdout, stderr, peakRssKb });
    });
  });
}

async function countGzipLines(file: string): Promise<number> {
  let lines = 0;
  for await (const chunk of createReadStream(file).pipe(createGunzip())) {
    const buffer = chunk as Buffer;
    for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, i + 1)) lines += 1;
  }
  return lines;
}

async function runBaseline(url: string, workDir: string, workload: Workload): Promise<RunResult> {
  const file = join(workDir, 'baseline.jsonl.gz');
  const env = {
    ...process.env,
    BENCH_URL: url,
    BENCH_FILE: file,
    BENCH_COPY: `\\copy (SELECT row_to_json(t) FROM ${TABLE} t WHERE ${OLD_ROWS}) TO STDOUT`,
    BENCH_DELETE: `DELETE FROM ${TABLE} WHERE ${OLD_ROWS}`,
  };
  const copy = await runTimed('bash', ['-c', 'set -o pipefail; psql -X -q -v ON_ERROR_STOP=1 "$BENCH_URL" -c "$BENCH_COPY" | gzip -1 > "$BENCH_FILE"'], { env });
  if (copy.code !== 0) throw new BenchError(`baseline: psql \\copy | gzip failed (exit ${copy.code}): ${copy.stderr.trim()}`);
  const del = await runTimed('bash', ['-c', 'psql -X -q -v ON_ERROR_STOP=1 "$BENCH_URL" -c "$BENCH_DELETE"'], { env });
  if (del.code !== 0) throw new BenchError(`baseline: DELETE failed (exit ${del.code}): ${del.stderr.trim()}`);

  const lines = await countGzipLines(file);
  if (lines !== workload.oldRows) throw new BenchError(`baseline: the dump holds ${lines} lines, expected ${workload.oldRows}`);
  await checkRowsLeft(url, workload, 'baseline');
  const outputBytes = (await stat(file)).size;
  await rm(file, { force: true });
  return {
    name: 'baseline: psql \\copy, gzip -1, DELETE',
    seconds: copy.seconds + del.seconds,
    rowsArchived: lines,
    outputBytes,
    peakRssMb: undefined,
    breakdown: `copy+gzip ${copy.seconds.toFixed(1)} s, DELETE ${del.seconds.toFixed(1)} s`,
  };
}

interface S3Server {
  endpoint: string;
  stop(): Promise<void>;
}

/**
 * s3rver through its own CLI in a separate process, so its CPU is not billed to either run's
 * process. --openssl-legacy-provider: s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens
 * with DES, which Node's OpenSSL 3 refuses, failing every listing longer than one page.
 */
async function startS3rver(directory: string): Promise<S3Server> {
  // The tests' s3rver wrapper: it also works around s3rver's crash on a PUT racing a DELETE in one directory.
  const script = join(repoRoot, 'test', 'helpers', 's3rver-child.mjs');
  const child = spawn(process.execPath, ['--openssl-legacy-provider', script, directory, BUCKET], {
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  let stopping = false;
  const port = await new Promise<number>((resolvePromise, reject) => {
    const timer = setTimeout(() => reject(new BenchError(`s3rver did not start within 15 s: ${output}`)), 15_000);
    const onData = (chunk: Buffer): void => {
      output = (output + chunk.toString()).slice(-8_000);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('message', (message: { type?: string; port?: number }) => {
      if (message.type === 'ready' && message.port !== undefined) {
        clearTimeout(timer);
        resolvePromise(message.port);
      }
    });
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new BenchError(`s3rver exited with code ${code}: ${output}`));
      if (!stopping) process.stderr.write(`bench: s3rver exited unexpectedly (code ${code}, signal ${signal}): ${output.slice(-2000)}\n`);
    });
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((done) => child.once('exit', () => done()));
      stopping = true;
      child.kill('SIGTERM');
      await exited;
    },
  };
}

function buildConfigYaml(target: { endpoint: string } | { localPath: string }, toolDefaults: Record<string, number | string>): string {
  // The database URL stays in the environment (expanded by the tool), not in a file on disk.
  const storage =
    'endpoint' in target
      ? ['s3:', `  bucket: ${BUCKET}`, '  region: us-east-1', `  endpoint: ${target.endpoint}`, '  force_path_style: true', '  access_key_id: S3RVER', '  secret_access_key: S3RVER']
      : ['local:', `  path: ${target.localPath}`];
  return [
    ...storage,
    ...(Object.keys(toolDefaults).length === 0 ? [] : ['defaults:', ...Object.entries(toolDefaults).map(([k, v]) => `  ${k}: ${v}`)]),
    'databases:',
    '  - name: bench',
    '    url: ${AUDITLOG_BENCH_DATABASE_URL}',
    '    tables:',
    '      - name: audit_log',
    '        schema: public',
    '        timestamp_column: created_at',
    '        primary_key: id',
    `        retention_days: ${RETENTION_DAYS}`,
    '',
  ].join('\n');
}

interface ArchiveSummaryLike {
  tables?: Array<{ rowsArchived?: number; bytesCompressed?: number; batches?: number }>;
}

async function runArchive(
  url: string,
  workDir: string,
  workload: Workload,
  toolDefaults: Record<string, number | string>,
  storage: Storage,
): Promise<{ archive: RunResult; validations: ValidateResult[] }> {
  const s3 = storage === 's3rver' ? await startS3rver(join(workDir, 's3rver')) : undefined;
  try {
    const configPath = join(workDir, `bench-config-${storage}.yaml`);
    await writeFile(configPath, buildConfigYaml(s3 === undefined ? { localPath: join(workDir, 'local-archive') } : { endpoint: s3.endpoint }, toolDefaults));
    // AUDITLOG_BENCH_NODE_ARGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles the archive
    // process; node then runs the script directly, so bin/auditlog's shebang flags are repeated here.
    const nodeArgs = (process.env.AUDITLOG_BENCH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    const bin = join(repoRoot, 'bin', 'auditlog');
    const [command, args] =
      nodeArgs.length === 0
        ? [bin, ['archive', '--config', configPath, '--quiet', '--json']]
        : [process.execPath, ['--max-old-space-size=1024', '--initial-old-space-size=96', ...nodeArgs, bin, 'archive', '--config', configPath, '--quiet', '--json']];
    const outcome = await runTimed(command, args, {
      cwd: repoRoot,
      env: { ...process.env, AUDITLOG_BENCH_DATABASE_URL: url, MALLOC_ARENA_MAX: '2' },
      trackRss: true,
    });
    if (outcome.code !== 0) {
      throw new BenchError(`archive: ./bin/auditlog exited with ${outcome.code}: ${(outcome.stderr + outcome.stdout).trim().slice(-4_000)}`);
    }
    await checkRowsLeft(url, workload, 'archive');
    const summary = parseSummary(outcome.stdout);
    const table = summary?.tables?.[0];
    const rowsArchived = table?.rowsArchived ?? workload.oldRows;
    if (rowsArchived !== workload.oldRows) throw new BenchError(`archive: the tool reports ${rowsArchived} rows archived, expected ${workload.oldRows}`);
    const label = storage === 's3rver' ? 's3rver' : 'local dir';
    const validations: ValidateResult[] = [];
    for (const deep of [true, false]) {
      log(`running ./bin/auditlog validate ${deep ? '--deep' : '(shallow)'} (${storage})…`);
      validations.push(await runValidate(configPath, url, workload, deep, label));
    }
    const archive: RunResult = {
      name: `auditlog archive (${label})`,
      seconds: outcome.seconds,
      rowsArchived,
      outputBytes: table?.bytesCompressed,
      peakRssMb: outcome.peakRssKb === undefined ? undefined : outcome.peakRssKb / 1024,
      breakdown: table?.batches === undefined ? '' : `${table.batches} batches`,
    };
    return { archive, validations };
  } finally {
    await s3?.stop();
  }
}

/** Validates the archive just written: it must be clean and hold every archived row. */
async function runValidate(configPath: string, url: string, workload: Workload, deep: boolean, label: string): Promise<ValidateResult> {
  const bin = join(repoRoot, 'bin', 'auditlog');
  const args = ['validate', '--config', configPath, '--json', '--progress-interval', '0', ...(deep ? ['--deep'] : ['--deep-threshold', '0'])];
  const outcome = await runTimed(bin, args, { cwd: repoRoot, env: { ...process.env, AUDITLOG_BENCH_DATABASE_URL: url }, trackRss: true });
  if (outcome.code !== 0) throw new BenchError(`validate: ./bin/auditlog exited with ${outcome.code}: ${(outcome.stderr + outcome.stdout).trim().slice(-4_000)}`);
  const report = JSON.parse(outcome.stdout) as { ok: boolean; deep: boolean; totals: { objects: number; rows: number; bytes: number } };
  if (!report.ok || report.deep !== deep || report.totals.rows !== workload.oldRows) {
    throw new BenchError(`validate: expected a clean ${deep ? 'deep' : 'shallow'} report of ${workload.oldRows} rows, got ${outcome.stdout.slice(0, 2_000)}`);
  }
  return {
    name: `auditlog validate ${deep ? '--deep' : '(shallow)'} (${label})`,
    seconds: outcome.seconds,
    objects: report.totals.objects,
    rows: report.totals.rows,
    storedBytes: report.totals.bytes,
    peakRssMb: outcome.peakRssKb === undefined ? undefined : outcome.peakRssKb / 1024,
  };
}

function formatValidateTable(results: ValidateResult[]): string {
  const header = ['run', 'objects', 'rows', 'stored MB', 'seconds', 'objects/s', 'MB/s (stored)', 'rows/s', 'peak RSS MB'];
  const rows = results.map((r) => [
    r.name,
    r.objects.toLocaleString('en-US'),
    r.rows.toLocaleString('en-US'),
    (r.storedBytes / 1e6).toFixed(1),
    r.seconds.toFixed(2),
    Math.round(r.objects / r.seconds).toLocaleString('en-US'),
    (r.storedBytes / 1e6 / r.seconds).toFixed(1),
    Math.round(r.rows / r.seconds).toLocaleString('en-US'),
    r.peakRssMb === undefined ? 'n/a' : r.peakRssMb.toFixed(0),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

/** The summary is the last JSON line of stdout; its absence only loses detail, the row check above is what counts. */
function parseSummary(stdout: string): ArchiveSummaryLike | undefined {
  const lines = stdout.trim().split('\n').reverse();
  for (const line of lines) {
    try {
      const parsed = JSON.parse(line) as unknown;
      if (typeof parsed === 'object' && parsed !== null && 'tables' in parsed) return parsed as ArchiveSummaryLike;
    } catch {
      continue;
    }
  }
  return undefined;
}

function formatTable(results: RunResult[], workload: Workload): string {
  const header = ['run', 'rows archived', 'seconds', 'rows/s', 'MB/s (JSON)', 'output MB', 'peak RSS MB', 'notes'];
  const rows = results.map((r) => [
    r.name,
    r.rowsArchived.toLocaleString('en-US'),
    r.seconds.toFixed(1),
    Math.round(r.rowsArchived / r.seconds).toLocaleString('en-US'),
    (workload.jsonBytes / 1e6 / r.seconds).toFixed(1),
    r.outputBytes === undefined ? 'n/a' : (r.outputBytes / 1e6).toFixed(1),
    r.peakRssMb === undefined ? 'n/a' : r.peakRssMb.toFixed(0),
    r.breakdown,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const out = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
  const [baseline, ...archives] = results;
  if (baseline !== undefined) {
    for (const archive of archives) out.push(`${archive.name} / baseline wall time: ${(archive.seconds / baseline.seconds).toFixed(2)}× (target ≤ 1.5×)`);
    if (archives.length > 0) out.push('peak RSS target < 300 MB');
  }
  return out.join('\n');
}

const RESTORE_TARGET = 'bench.restore_target';

async function checkpoint(client: pg.Client): Promise<void> {
  await client.query('CHECKPOINT').catch((error: unknown) => log(`CHECKPOINT skipped (${describeError(error)})`));
}

async function countRows(url: string, table: string): Promise<number> {
  return withClient(url, async (client) => Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]?.n ?? -1));
}

interface RestoreSummaryLike {
  status?: string;
  rows?: { restored: number; inserted: number; conflicts: number };
  error?: { message: string };
}

/**
 * Restore, from the local archive of the archive run, into `bench.restore_target` (LIKE the
 * audit table, with its primary key and index): empty, and holding every other archived row
 * (`--conflict skip`). Baseline: `psql \copy bench.restore_target FROM file` of the same rows
 * into the empty table, the fastest load a user could script (no checks, no conflict handling).
 */
async function runRestoreBenchmarks(url: string, workDir: string, workload: Workload, configPath: string): Promise<RunResult[]> {
  const dump = join(workDir, 'restore-baseline.copy');
  const env = { ...process.env, BENCH_URL: url, BENCH_DUMP: `\\copy (SELECT * FROM ${PRISTINE} WHERE ${OLD_ROWS} ORDER BY id) TO '${dump}'`, BENCH_LOAD: `\\copy ${RESTORE_TARGET} FROM '${dump}'` };
  const dumped = await runTimed('bash', ['-c', 'psql -X -q -v ON_ERROR_STOP=1 "$BENCH_URL" -c "$BENCH_DUMP"'], { env });
  if (dumped.code !== 0) throw new BenchError(`restore baseline: dump failed: ${dumped.stderr.trim()}`);
  await withClient(url, (client) => client.query(`DROP TABLE IF EXISTS ${RESTORE_TARGET}; CREATE TABLE ${RESTORE_TARGET} (LIKE ${TABLE} INCLUDING ALL)`));
  const reset = (overlap: boolean) =>
    withClient(url, async (client) => {
      await client.query(`TRUNCATE ${RESTORE_TARGET}`);
      if (overlap) await client.query(`INSERT INTO ${RESTORE_TARGET} SELECT * FROM ${PRISTINE} WHERE ${OLD_ROWS} AND id % 2 = 0 ORDER BY id`);
      await client.query(`VACUUM (ANALYZE) ${RESTORE_TARGET}`);
      await checkpoint(client);
    });
  const results: RunResult[] = [];

  await reset(false);
  const baseline = await runTimed('bash', ['-c', 'psql -X -q -v ON_ERROR_STOP=1 "$BENCH_URL" -c "$BENCH_LOAD"'], { env });
  if (baseline.code !== 0) throw new BenchError(`restore baseline: \\copy FROM failed: ${baseline.stderr.trim()}`);
  const loaded = await countRows(url, RESTORE_TARGET);
  if (loaded !== workload.oldRows) throw new BenchError(`restore baseline: ${loaded} rows loaded, expected ${workload.oldRows}`);
  results.push({ name: 'baseline: psql \\copy FROM (empty table)', seconds: baseline.seconds, rowsArchived: loaded, outputBytes: undefined, peakRssMb: undefined, breakdown: 'no checks' });
  await rm(dump, { force: true });

  for (const overlap of [false, true]) {
    await reset(overlap);
    const present = overlap ? await countRows(url, RESTORE_TARGET) : 0;
    const outcome = await runTimed(
      join(repoRoot, 'bin', 'auditlog'),
      ['restore', '--config', configPath, '--table', 'audit_log', '--target-table', RESTORE_TARGET, '--conflict', 'skip', '--ignore-watermark', '--quiet', '--json'],
      { cwd: repoRoot, env: { ...process.env, AUDITLOG_BENCH_DATABASE_URL: url, MALLOC_ARENA_MAX: '2' }, trackRss: true },
    );
    const summary = JSON.parse(outcome.stdout.trim().split('\n').pop() ?? '{}') as RestoreSummaryLike;
    if (outcome.code !== 0 || summary.status !== 'ok') {
      throw new BenchError(`restore: ./bin/auditlog exited with ${outcome.code}: ${summary.error?.message ?? (outcome.stderr + outcome.stdout).trim().slice(-4_000)}`);
    }
    const total = await countRows(url, RESTORE_TARGET);
    if (total !== workload.oldRows || summary.rows?.conflicts !== present || summary.rows.restored !== workload.oldRows) {
      throw new BenchError(`restore: expected ${workload.oldRows} rows in the target and ${present} conflicts, found ${total} rows, summary ${JSON.stringify(summary.rows)}`);
    }
    results.push({
      name: `auditlog restore (${overlap ? 'half the rows present, --conflict skip' : 'empty table'})`,
      seconds: outcome.seconds,
      rowsArchived: summary.rows.restored,
      outputBytes: undefined,
      peakRssMb: outcome.peakRssKb === undefined ? undefined : outcome.peakRssKb / 1024,
      breakdown: `${summary.rows.inserted} inserted, ${summary.rows.conflicts} skipped`,
    });
  }
  return results;
}

function formatRestoreTable(results: RunResult[]): string {
  const header = ['run', 'rows', 'seconds', 'rows/s', 'peak RSS MB', 'notes'];
  const rows = results.map((r) => [r.name, r.rowsArchived.toLocaleString('en-US'), r.seconds.toFixed(1), Math.round(r.rowsArchived / r.seconds).toLocaleString('en-US'), r.peakRssMb === undefined ? 'n/a' : r.peakRssMb.toFixed(0), r.breakdown]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  const out = [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
  const [baseline, ...restores] = results;
  if (baseline !== undefined) {
    for (const r of restores) out.push(`${r.name} / baseline wall time: ${(r.seconds / baseline.seconds).toFixed(2)}×${r === restores[0] ? ' (target ≤ 2×)' : ''}`);
  }
  return out.join('\n');
}

function describeMachine(serverVersion: string): string {
  const cpu = cpus();
  return `${cpu.length} × ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB RAM, Node ${process.version}, ${serverVersion}`;
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`bench: ${describeError(error)} (see --help)\n`);
    return 2;
  }
  checkPrerequisites(options);
  const cleanups: Array<() => Promise<void>> = [];
  let database: ScratchDatabase | undefined;
  try {
    const serverUrl = await chooseServer(cleanups);
    database = await createScratchDatabase(serverUrl, 'auditlog_bench');
    const db = database;
    const workDir = await mkdtemp(join(tmpdir(), 'auditlog-bench-'));
    cleanups.push(() => rm(workDir, { recursive: true, force: true }));

    log(`seeding ${options.rows.toLocaleString('en-US')} rows into ${db.name}…`);
    const seedStarted = performance.now();
    const serverVersion = await withClient(db.url, async (client) => {
      let reported = 0;
      await seedAuditTable(client, {
        schema: 'public',
        table: 'audit_log',
        rows: options.rows,
        oldFraction: 0.5,
        retentionDays: RETENTION_DAYS,
        spanDays: options.spanDays,
        onProgress: (inserted, total) => {
          if (inserted - reported >= total / 10 || inserted === total) {
            reported = inserted;
            log(`  ${inserted.toLocaleString('en-US')} / ${total.toLocaleString('en-US')} rows`);
          }
        },
      });
      await client.query('CREATE SCHEMA bench');
      await client.query(`CREATE TABLE ${PRISTINE} AS TABLE ${TABLE}`);
      return (await client.query<{ v: string }>('SELECT version() AS v')).rows[0]?.v.split(' on ')[0] ?? 'PostgreSQL';
    });
    log(`seeded in ${((performance.now() - seedStarted) / 1000).toFixed(1)} s`);

    const results: RunResult[] = [];
    const validations: ValidateResult[] = [];
    log('restoring the table for the baseline…');
    await restoreTable(db.url);
    const workload = await measureWorkload(db.url);
    log(`workload: ${workload.oldRows.toLocaleString('en-US')} rows to archive (${(workload.jsonBytes / 1e6).toFixed(0)} MB as JSON), ${workload.newRows.toLocaleString('en-US')} to keep`);
    log('running the baseline…');
    results.push(await runBaseline(db.url, workDir, workload));

    if (!options.baselineOnly) {
      for (const storage of options.storages) {
        log('restoring the table for the archive run…');
        await restoreTable(db.url);
        log(`running ./bin/auditlog archive (${storage})…`);
        const run = await runArchive(db.url, workDir, workload, options.toolDefaults, storage);
        results.push(run.archive);
        validations.push(...run.validations);
      }
    }
    let restoreResults: RunResult[] = [];
    if (!options.baselineOnly && options.restore) {
      if (!options.storages.includes('local')) {
        log('archiving to a local directory for the restore runs (not timed)…');
        await restoreTable(db.url);
        await runArchive(db.url, workDir, workload, options.toolDefaults, 'local');
      }
      log('timing restore against psql \\copy FROM…');
      restoreResults = await runRestoreBenchmarks(db.url, workDir, workload, join(workDir, 'bench-config-local.yaml'));
    }

    process.stdout.write(`\n${describeMachine(serverVersion)}\n${options.rows.toLocaleString('en-US')} rows seeded over ${options.spanDays} days, ${RETENTION_DAYS}-day retention${Object.entries(options.toolDefaults).map(([k, v]) => `, ${k} ${v}`).join('')}\n\n`);
    process.stdout.write(`${formatTable(results, workload)}\n`);
    if (validations.length > 0) process.stdout.write(`\n${formatValidateTable(validations)}\n`);
    if (restoreResults.length > 0) process.stdout.write(`\n${formatRestoreTable(restoreResults)}\n`);
    return 0;
  } finally {
    if (database !== undefined) {
      if (options.keep) log(`kept database ${database.name}: ${database.url}`);
      else await database.drop().catch((error: unknown) => log(`could not drop ${database?.name}: ${describeError(error)}`));
    }
    for (const cleanup of cleanups.reverse()) await cleanup().catch((error: unknown) => log(`cleanup failed: ${describeError(error)}`));
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`bench: ${describeError(error)}\n`);
    process.exitCode = 1;
  },
);
