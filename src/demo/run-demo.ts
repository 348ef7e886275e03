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

/** Left in DIR by a demo: its `archive/` is the demo's own, which the next demo may replace. */
const DEMO_MARKER = '.auditlog-demo';

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
  await refuseForeignArchive(dir, archiveDir);
  await writeFile(join(dir, DEMO_MARKER), 'This directory holds an `auditlog demo`: its archive/ is replaced by the next demo.\n');
  await rm(archiveDir, { recursive: true, force: true });
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
 * Refuses a non-empty `archive/` in `dir` that no demo made: one with the demo's marker beside it,
 * or (demos of older versions left none) holding only what a demo writes (its `demo` database and
 * `_auditlog`).
 */
async function refuseForeignArchive(dir: string, archiveDir: string): Promise<void> {
  const entries = await readdir(archiveDir).catch(() => undefined);
  if (entries === undefined || entries.length === 0) return;
  if (await stat(join(dir, DEMO_MARKER)).then(() => true, () => false)) return;
  if (entries.every((e) => e === '_auditlog' || e === 'demo')) return;
  throw new AuditlogError(
    'USAGE',
    `${archiveDir} exists and was not made by auditlog demo (${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, no ${DEMO_MARKER} beside it): the demo starts from an empty archive and would delete it; choose another --dir`,
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
