/**
 * Progress of the real CLI: a live line on a pseudo-terminal (util-linux `script` gives the child
 * a pty), JSON progress lines every progress_update_interval off a terminal, nothing with --quiet.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { BIN, ROOT, runCli } from '../helpers/run-cli.js';

let dir: string;
let db: TestDatabase;
let config: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'progress-'));
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});
beforeEach(async (t) => {
  await db.query('DROP TABLE IF EXISTS events');
  await createEventsTable(db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
  config = join(dir, `${t.task.id}.yaml`);
  // 6 batches with a 150 ms pause after each: the run lasts at least 0.9 s, several 0.2 s intervals.
  await writeFile(
    config,
    `local:
  path: ${join(dir, `archive-${t.task.id}`)}
defaults:
  retention_days: 10
  batch_size: 5
  pause_between_batches_ms: 150
monitoring:
  progress_update_interval: 0.2
databases:
  - name: app
    url: ${db.url}
    tables:
      - name: events
        timestamp_column: happened_at
`,
  );
});

describe('progress output', () => {
  it('on a pseudo-terminal: a live line per table with percent, rows/s and ETA, ending at 100 %', async () => {
    const cmd = `${BIN} archive --config ${config}`;
    const { stdout } = await promisify(execFile)('script', ['-qec', cmd, '/dev/null'], { cwd: ROOT, timeout: 120_000 });
    // Every write to the terminal starts with "\r, erase line": progress redraws and log lines alike.
    const segments = stdout.split('\r\x1b[2K').slice(1);
    const redraws = segments.filter((s) => s.startsWith('app/'));
    expect(redraws.length).toBeGreaterThanOrEqual(6);
    expect(segments.some((s) => s.includes('INFO'))).toBe(true);
    // A log line replaces the live line rather than being glued to its end.
    for (const line of redraws.slice(0, -1)) expect(line).toMatch(/^app\/public\.events +\d+\.\d% \d+\/30 rows \d+ rows\/s ETA (\d+:\d\d|--:--)(\r?\n)?$/);
    expect(redraws.at(-1)).toMatch(/^app\/public\.events 100\.0% 30\/30 rows \d+ rows\/s ETA 0:00\r?\n/);
    expect(await rowIds(db)).toEqual([]);
  });

  it('off a terminal: a JSON progress line every interval with percent and ETA; none with --quiet', async () => {
    const r = await runCli(['archive', '--config', config]);
    expect(r.code).toBe(0);
    expect(r.stderr).not.toContain('\x1b[2K');
    const progress = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => l.msg === 'progress');
    expect(progress.length).toBeGreaterThanOrEqual(2);
    for (const p of progress) {
      expect(p).toMatchObject({ table: 'public.events', database: 'app', total: 30 });
      expect(p.percent).toBe(Math.round(((p.rows as number) / 30) * 1000) / 10);
      expect(p.rows_per_s).toEqual(expect.any(Number));
      expect('eta_s' in p).toBe(true);
    }

    await db.query('DROP TABLE events');
    await createEventsTable(db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    const quiet = await runCli(['archive', '--config', config, '--quiet']);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).not.toContain('progress');
    expect(await rowIds(db)).toEqual([]);
  });
});
