/**
 * The embedded default: a private PostgreSQL, an audit table with two years of realistic rows,
 * and the real archive pipeline moving the old half to a local directory. Needs nothing on the
 * machine but Node.js.
 */
import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pg from 'pg';
import type { Logger } from 'pino';
import { runArchive } from '../archive/run-archive.js';
import type { RunSummary } from '../archive/table-summary.js';
import { configSchema } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';
import { isDataKey } from '../core/archive-layout.js';
import { startEmbeddedPostgres } from '../db/embedded-postgres.js';
import { LocalObjectStore } from '../storage/local-object-store.js';
import { seedAuditTable } from './seed-audit-table.js';

export const DEMO_RETENTION_DAYS = 365;
const DEMO_DATABASE = 'auditlog_demo';

export interface DemoOptions {
  dir: string;
  rows: number;
  logger: Logger;
  runId: string;
  toolVersion: string;
}

export interface DemoResult {
  summary: RunSummary;
  archiveDir: string;
  dataObjects: string[];
  rowsBefore: number;
  rowsAfter: number;
}

/** Written into the archive a demo makes (in the tool's own `_auditlog/`): the next demo may replace it. */
const DEMO_MARKER = '_auditlog/demo.json';
/** What a demo archive holds at its top, and under its database: nothing else. */
const DEMO_TOP = new Set(['_auditlog', 'demo']);
const DEMO_TABLE_DIR = 'public.audit_log';

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const dir = resolve(options.dir);
  const archiveDir = join(dir, 'archive');
  if ((await stat(dir).catch(() => undefined))?.isDirectory() === false) {
    throw new AuditlogError('USAGE', `--dir ${dir} is a file, not a directory: choose a directory for the demo's database and archive`);
  }
  await mkdir(dir, { recursive: true });
  // Each demo starts from a fresh table, so the archive it shows must be fresh too — but only an
  // archive a demo made is removed: `demo --dir .` beside a configuration whose local.path is
  // ./archive deleted the real archive, the only copy of rows gone from their table (found by probing).
  await refuseForeignArchive(archiveDir);
  await rm(archiveDir, { recursive: true, force: true });
  await mkdir(join(archiveDir, '_auditlog'), { recursive: true });
  await writeFile(join(archiveDir, DEMO_MARKER), JSON.stringify({ made_by: 'auditlog demo', note: 'the next auditlog demo replaces this archive' }) + '\n');
  options.logger.info({ dir }, 'starting an embedded PostgreSQL (first start initialises it, ~10 s)');
  const server = await startEmbeddedPostgres({ dataDir: demoDataDir(dir) });
  try {
    const url = await ensureDatabase(server.url, DEMO_DATABASE);
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    let rowsBefore: number;
    try {
      await client.query('DROP TABLE IF EXISTS public.audit_log');
      options.logger.info({ rows: options.rows }, 'creating public.audit_log with two years of rows');
      await seedAuditTable(client, { schema: 'public', table: 'audit_log', rows: options.rows, oldFraction: 0.5, retentionDays: DEMO_RETENTION_DAYS });
      rowsBefore = Number((await client.query<{ n: string }>('SELECT count(*)::text AS n FROM public.audit_log')).rows[0]!.n);
    } finally {
      await client.end();
    }

    const config = configSchema.parse({
      local: { path: archiveDir },
      defaults: { retention_days: DEMO_RETENTION_DAYS, batch_size: 5_000 },
      databases: [{ name: 'demo', url, tables: [{ name: 'audit_log', timestamp_column: 'created_at' }] }],
    });
    const store = new LocalObjectStore(config.local!);
    const summary = await runArchive({ config, store, logger: options.logger, runId: options.runId, toolVersion: options.toolVersion });

    const dataObjects: string[] = [];
    for await (const o of store.list('')) if (isDataKey(o.key)) dataObjects.push(o.key);
    const check = new pg.Client({ connectionString: url });
    await check.connect();
    const rowsAfter = Number((await check.query<{ n: string }>('SELECT count(*)::text AS n FROM public.audit_log')).rows[0]!.n);
    await check.end();
    return { summary, archiveDir, dataObjects, rowsBefore, rowsAfter };
  } finally {
    await server.stop();
  }
}

/**
 * Refuses an `archive/` that is not empty unless a demo made it: its marker inside, and nothing
 * but the demo's table and the tool's `_auditlog/` (a real archive later written into a demo's
 * directory is refused too). A demo archive of an older version has no marker: it is refused with
 * the command that removes it, which costs one `rm` rather than a real archive.
 */
async function refuseForeignArchive(archiveDir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(archiveDir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new AuditlogError('USAGE', `${archiveDir} cannot be used for the demo's archive (${(error as Error).message}): choose another --dir`, { cause: error });
  }
  if (entries.length === 0) return;
  const marked = await stat(join(archiveDir, DEMO_MARKER)).then(() => true, () => false);
  const demoOnly = entries.every((e) => DEMO_TOP.has(e)) && (await readdir(join(archiveDir, 'demo')).catch(() => [] as string[])).every((e) => e === DEMO_TABLE_DIR);
  if (marked && demoOnly) return;
  throw new AuditlogError(
    'USAGE',
    `${archiveDir} is not empty and is not an archive auditlog demo made (${marked ? 'it holds more than the demo table' : `no ${DEMO_MARKER} in it`}): the demo starts from an empty archive and would delete it; choose another --dir${marked ? '' : ` (if it is an older version's demo archive, remove it: rm -r '${archiveDir}')`}`,
  );
}

/**
 * As root, PostgreSQL runs as the `postgres` user, which often cannot reach a directory under
 * root's home (mode 0700): the cluster then lives under the system temp directory, one per demo dir.
 */
function demoDataDir(dir: string): string {
  if (process.getuid?.() !== 0) return join(dir, 'pgdata');
  return join(tmpdir(), `auditlog-demo-pgdata-${createHash('sha256').update(dir).digest('hex').slice(0, 12)}`);
}

async function ensureDatabase(serverUrl: string, name: string): Promise<string> {
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  try {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const u = new URL(serverUrl);
  u.pathname = `/${name}`;
  return u.toString();
}
