/**
 * `auditlog archive --json | head -1`: the reader of stdout goes away before the summary is
 * written. That is not a failure of the run: no crash, no stack trace, and the exit code is the
 * work's (0 here: every row archived), the same as with a reader that stayed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { BIN, ROOT } from '../helpers/run-cli.js';

let dir: string;
let db: TestDatabase;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stdout-closed-'));
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI with stdout a pipe whose read end this process closes at once. */
function runWithClosedStdout(args: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
  const child = spawn(BIN, args, { cwd: ROOT, env: process.env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
}

describe('stdout closed by its reader', () => {
  it('archive --json: every row archived, no EPIPE crash or stack trace, exit 0', async () => {
    await createEventsTable(db, { rows: 40, stepMinutes: 30, endDaysAgo: 11 });
    const file = join(dir, 'config.json');
    await writeFile(file, JSON.stringify({ local: { path: join(dir, 'archive') }, defaults: { retention_days: 10, batch_size: 8 }, databases: [{ name: 'app', url: db.url, tables: [{ name: 'events', timestamp_column: 'happened_at' }] }] }));
    const r = await runWithClosedStdout(['archive', '--config', file, '--json']);
    expect(r.stderr).not.toMatch(/EPIPE|Unhandled|\n\s+at /);
    expect(r.signal).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    expect(await rowIds(db)).toEqual([]);
  });

  it('config validate --print (another command on the same stdout): no stack trace, exit 0', async () => {
    const file = join(dir, 'config.json');
    const r = await runWithClosedStdout(['config', 'validate', '--config', file, '--print']);
    expect(r.stderr).not.toMatch(/EPIPE|Unhandled|\n\s+at /);
    expect(r.code, r.stderr).toBe(0);
  });
});
