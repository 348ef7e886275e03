/**
 * A table state or checkpoint that is not valid (STATE_INVALID), through the real CLI on a real
 * database: `archive` fails that table — one line naming the document and the fix, never its
 * content, nothing deleted — and goes on with the others; `status` and `watermarks list` say
 * "unknown" for it and report the other tables; `watermarks reset` replaces it. Also the
 * `watermarks` command line: `--all` for list, `--table` with `--all`, an ambiguous `--table`,
 * `reset --json`, and key values quoted in the output.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { runCli, type CliResult } from '../helpers/run-cli.js';
import { checkpointKey, tableStateKey } from '../../src/core/archive-layout.js';
import type { TableState } from '../../src/state/table-state.js';

const id = { database: 'app', schema: 'public', table: 'events' };
const otherId = { ...id, table: 'other' };
/** Stands for row data in a document: it must never reach a message. */
const SECRET = 'SECRET-ROW-VALUE-4711';
const RESET = '`auditlog watermarks reset --database app --table public.events`';

let db: TestDatabase;
let dir: string;
let archive: string;
let config: string;

async function writeConfig(extra: Record<string, unknown> = {}, databases?: unknown[]): Promise<void> {
  const tables = [
    { name: 'events', timestamp_column: 'happened_at' },
    { name: 'other', timestamp_column: 'happened_at' },
  ];
  await writeFile(
    config,
    JSON.stringify({
      local: { path: archive },
      defaults: { retention_days: 10, batch_size: 10 },
      databases: databases ?? [{ name: 'app', url: db.url, tables }],
      ...extra,
    }),
  );
}

beforeEach(async () => {
  db = await createTestDatabase();
  dir = await mkdtemp(join(tmpdir(), 'state-invalid-'));
  archive = join(dir, 'archive');
  config = join(dir, 'config.json');
  await writeConfig();
  await createEventsTable(db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
  await createEventsTable(db, { table: 'other', rows: 30, stepMinutes: 60, endDaysAgo: 11 });
});

afterEach(async () => {
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

const inArchive = (key: string): string => join(archive, ...key.split('/'));
const statePath = (t = id): string => inArchive(tableStateKey(t));
const checkpointPath = (): string => inArchive(checkpointKey(id));

async function cli(...args: string[]): Promise<CliResult> {
  return runCli([...args, '--config', config]);
}

async function archiveOk(): Promise<void> {
  const r = await cli('archive', '--quiet');
  expect(r.code, r.stdout + r.stderr).toBe(0);
}

/** Rows past the retention again, for a run that must not delete them. */
async function addOldRows(): Promise<string[]> {
  await db.query(`INSERT INTO events (id, happened_at) SELECT g, now() - interval '20 days' FROM generate_series(1000, 1004) g`);
  return ['1000', '1001', '1002', '1003', '1004'];
}

function expectNoSecret(...results: CliResult[]): void {
  for (const r of results) expect(r.stdout + r.stderr).not.toContain(SECRET);
}

describe('a table state that is not valid', () => {
  it('fails archive for that table only (STATE_INVALID, one line, no content, nothing deleted); status and list say unknown and go on; reset replaces it', async () => {
    await archiveOk();
    const added = await addOldRows();
    const broken = `{"format": "auditlog-table-state", "watermark": {"position": {"key": ["${SECRET}"`;
    await writeFile(statePath(), broken);

    const run = await cli('archive');
    expect(run.code).toBe(1);
    const errors = run.stdout.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors).toEqual([
      `error: app/public.events: the table state of app/public.events at ${statePath()} is not valid (it is not JSON): run ${RESET} to discard it (a lost watermark costs a longer scan, never a row; the last-run record goes with it) [STATE_INVALID]`,
    ]);
    expect(run.stdout).toMatch(/app\/public\.other +nothing-to-archive/);
    expectNoSecret(run);
    // Nothing deleted, and the document is left for someone to look at, not overwritten.
    expect(await rowIds(db)).toEqual(expect.arrayContaining(added));
    expect(await readFile(statePath(), 'utf8')).toBe(broken);

    const unknown = `unknown (could not read ${statePath()}: STATE_INVALID)`;
    const status = await cli('status');
    expect(status.code, status.stdout).toBe(1);
    expect(status.stdout).toContain(`app/public.events\n  lock:       free\n  lock file:  free\n  watermark:  ${unknown}\n  last run:   ${unknown}\n`);
    expect(status.stdout).toContain(`  problem:    watermark: the table state of app/public.events at ${statePath()} is not valid (it is not JSON): run ${RESET}`);
    const otherWm = (JSON.parse(await readFile(statePath(otherId), 'utf8')) as TableState).watermark!;
    expect(status.stdout).toContain(`app/public.other\n  lock:       free\n  lock file:  free\n  watermark:  ${otherWm.position.ts} / ("${otherWm.position.key[0]}") (run `);
    const statusJson = JSON.parse((await cli('status', '--json')).stdout) as { tables: { table: string; state: unknown; stateUnreadable?: { code: string; location: string } }[] };
    expect(statusJson.tables.map((t) => [t.table, t.stateUnreadable?.code ?? null, t.stateUnreadable?.location ?? null])).toEqual([
      ['events', 'STATE_INVALID', statePath()],
      ['other', null, null],
    ]);

    const list = await cli('watermarks', 'list');
    expect(list.code).toBe(1);
    const [eventsLine, otherLine] = list.stdout.split('\n');
    expect(eventsLine!.startsWith(`app/public.events: ${unknown} (watermark: the table state of app/public.events at ${statePath()} is not valid`)).toBe(true);
    expect(otherLine).toBe(`app/public.other: ${otherWm.position.ts} / ("${otherWm.position.key[0]}") (run ${otherWm.run_id}, ${otherWm.updated_at})`);
    const listJson = await cli('watermarks', 'list', '--json');
    const listed = JSON.parse(listJson.stdout) as { watermarks: { table: string; watermark: unknown; unreadable?: { code: string; location: string } }[] };
    expect(listed.watermarks[0]).toMatchObject({ table: 'events', watermark: null, unreadable: { code: 'STATE_INVALID', location: statePath() } });
    expect(listed.watermarks[1]!.unreadable).toBeUndefined();
    expectNoSecret(status, list, listJson);

    const reset = await cli('watermarks', 'reset', '--table', 'events');
    expect(reset.code, reset.stdout).toBe(0);
    expect(reset.stdout).toBe(`app/public.events: discarded the invalid table state at ${statePath()}; the next run starts from the first row\n`);
    expect(JSON.parse(await readFile(statePath(), 'utf8'))).toMatchObject({ format: 'auditlog-table-state', watermark: null, last_run: null });
    expect((await cli('status')).code).toBe(0);

    await archiveOk();
    expect(await rowIds(db)).not.toEqual(expect.arrayContaining([added[0]]));
  });

  it('refuses a watermark whose timestamp PostgreSQL would take but never writes ("yesterday"), before any SQL runs with it', async () => {
    await archiveOk();
    const added = await addOldRows();
    const state = JSON.parse(await readFile(statePath(), 'utf8')) as TableState;
    state.watermark!.position = { ts: 'yesterday', key: [SECRET] };
    await writeFile(statePath(), JSON.stringify(state));

    const run = await cli('archive', '--json');
    expect(run.code).toBe(1);
    const summary = JSON.parse(run.stdout) as { tables: { table: string; status: string; error?: { code: string; message: string } }[] };
    const events = summary.tables.find((t) => t.table === 'events')!;
    expect(events.error?.code).toBe('STATE_INVALID');
    expect(events.error?.message).toContain('(watermark.position.ts is not a PostgreSQL timestamp)');
    expect(summary.tables.find((t) => t.table === 'other')!.status).toBe('nothing-to-archive');
    expectNoSecret(run);
    expect(await rowIds(db)).toEqual(expect.arrayContaining(added));
  });

  it('in the database backend: status names the row, reset replaces it', async () => {
    await writeConfig({ watermarks: { backend: 'database' } });
    await archiveOk();
    await db.query(
      `UPDATE public.auditlog_watermarks SET state = jsonb_set(state, '{watermark,position,key}', to_jsonb(ARRAY[$1::text, 'x'])) WHERE table_name = 'events'`,
      [SECRET],
    );
    const row = 'table public.auditlog_watermarks, row (app, public, events)';
    const status = await cli('status');
    expect(status.code).toBe(1);
    expect(status.stdout).toContain(`  watermark:  unknown (could not read ${row}: STATE_INVALID)`);
    expect(status.stdout).toContain(`is not valid (watermark.position.key has 2 value(s) for a primary key of 1 column(s)): run ${RESET}`);
    expectNoSecret(status);

    const reset = await cli('watermarks', 'reset', '--table', 'public.events');
    expect(reset.stdout).toBe(`app/public.events: discarded the invalid table state at ${row}; the next run starts from the first row\n`);
    expect(reset.code).toBe(0);
    const r = await db.query<{ wm: string | null }>(`SELECT state->>'watermark' AS wm FROM public.auditlog_watermarks WHERE table_name = 'events'`);
    expect(r.rows).toEqual([{ wm: null }]);
    expect((await cli('status')).code).toBe(0);
  });
});

describe('a checkpoint that is not valid', () => {
  it('fails archive for the table, shows as unknown in status, and is removed by reset (a valid watermark is reset with it)', async () => {
    await archiveOk();
    const added = await addOldRows();
    await mkdir(join(checkpointPath(), '..'), { recursive: true });
    await writeFile(checkpointPath(), JSON.stringify({ format: 'auditlog-checkpoint', ...id, run_id: SECRET, position: { ts: SECRET, key: ['1'] } }));

    const run = await cli('archive', '--quiet');
    expect(run.code).toBe(1);
    expect(run.stdout).toContain(`error: app/public.events: the checkpoint of app/public.events at ${checkpointPath()} is not valid (started_at is not a date-time): run ${RESET} to discard it (it only records how far an interrupted run got; no row depends on it) [STATE_INVALID]`);
    expectNoSecret(run);
    expect(await rowIds(db)).toEqual(expect.arrayContaining(added));

    const status = await cli('status');
    expect(status.code).toBe(1);
    expect(status.stdout).toContain(`  checkpoint: unknown (could not read ${checkpointPath()}: STATE_INVALID)`);
    // The table state is fine: it shows the watermark, and the failure recorded as the last run.
    expect(status.stdout).toMatch(/ {2}watermark: {2}\S+ \S+ \/ \("\d+"\) \(run /);
    expect(status.stdout).toMatch(/ {2}last run: {3}failed at .* STATE_INVALID: the checkpoint of app\/public\.events/);

    const reset = await cli('watermarks', 'reset', '--table', 'events');
    expect(reset.code, reset.stdout).toBe(0);
    expect(reset.stdout).toMatch(new RegExp(`^app/public\\.events: watermark reset \\(was \\S+ \\S+ / \\("\\d+"\\)\\); discarded the invalid checkpoint at ${escape(checkpointPath())}; the next run starts from the first row\\n$`));
    await expect(readFile(checkpointPath(), 'utf8')).rejects.toThrow(/ENOENT/);

    await archiveOk();
    expect(await rowIds(db)).not.toEqual(expect.arrayContaining([added[0]]));
  });
});

describe('the watermarks command line', () => {
  it('list takes --all (the same as no --table); --table with --all is a usage error for list and reset', async () => {
    await archiveOk();
    const plain = await cli('watermarks', 'list');
    const all = await cli('watermarks', 'list', '--all');
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toBe(plain.stdout);
    expect(all.stdout.split('\n').filter(Boolean)).toHaveLength(2);

    for (const command of ['list', 'reset']) {
      const both = await cli('watermarks', command, '--table', 'events', '--all');
      expect(both.code).toBe(2);
      expect(both.stdout).toBe('');
      expect(both.stderr).toBe(`auditlog: watermarks ${command}: --table and --all contradict each other: pass --table NAME for one table, or --all for every configured table (of --database, if given) [USAGE]\n`);
    }
    // Refused, so nothing was reset.
    expect((JSON.parse(await readFile(statePath(), 'utf8')) as TableState).watermark).not.toBeNull();
  });

  it('reset --json prints each table\'s result as JSON', async () => {
    await archiveOk();
    const wm = (JSON.parse(await readFile(statePath(), 'utf8')) as TableState).watermark!;
    const reset = await cli('watermarks', 'reset', '--table', 'events', '--json');
    expect(reset.code, reset.stderr).toBe(0);
    expect(JSON.parse(reset.stdout)).toEqual({ tables: [{ ...id, status: 'reset', was: wm.position, discarded: [] }] });

    await writeFile(statePath(otherId), '[]');
    const again = await cli('watermarks', 'reset', '--all', '--json');
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(again.stdout)).toEqual({
      tables: [
        { ...id, status: 'no-watermark', was: null, discarded: [] },
        { ...otherId, status: 'reset', was: null, discarded: [{ document: 'table state', location: statePath(otherId) }] },
      ],
    });
  });

  it('reset --table naming tables in several databases or schemas is a usage error naming them; --database or schema.name picks one', async () => {
    await db.query('CREATE SCHEMA audit');
    await createEventsTable(db, { schema: 'audit', rows: 30, stepMinutes: 60, endDaysAgo: 11 });
    const events = { name: 'events', timestamp_column: 'happened_at' };
    await writeConfig({}, [
      { name: 'app', url: db.url, tables: [events, { ...events, schema: 'audit' }] },
      { name: 'copy', url: db.url, tables: [events] },
    ]);
    await archiveOk();

    const ambiguous = await cli('watermarks', 'reset', '--table', 'events');
    expect(ambiguous.code).toBe(2);
    expect(ambiguous.stdout).toBe('');
    expect(ambiguous.stderr).toBe(
      'auditlog: watermarks reset: --table events matches 3 configured tables (app/public.events, app/audit.events, copy/public.events): pick one with --database NAME and/or --table schema.name, or pass --all for all of them [USAGE]\n',
    );
    const inApp = await cli('watermarks', 'reset', '--table', 'events', '--database', 'app');
    expect(inApp.code).toBe(2);
    expect(inApp.stderr).toContain('matches 2 configured tables (app/public.events, app/audit.events)');

    const one = await cli('watermarks', 'reset', '--table', 'audit.events', '--database', 'app');
    expect(one.code, one.stderr).toBe(0);
    expect(one.stdout).toMatch(/^app\/audit\.events: watermark reset \(was .*\); the next run starts from the first row\n$/);
    const copy = await cli('watermarks', 'reset', '--table', 'public.events', '--database', 'copy');
    expect(copy.code, copy.stderr).toBe(0);
    expect(copy.stdout).toMatch(/^copy\/public\.events: /);
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}
