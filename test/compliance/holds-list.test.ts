/**
 * `auditlog holds list` through the real CLI (dist/): every source, active and expired holds, the
 * tables and row counts they keep; a failing source is exit 1, and the API credential never shows.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable } from '../helpers/events-table.js';
import { runCli } from '../helpers/run-cli.js';
import type { HoldReport } from '../../src/cli/holds-command.js';

const fx = useArchiveFixture();
const TOKEN = 'tok-9f8e7d6c5b4a';

let api: Server;
let apiUrl: string;
let answer: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.end('{"holds": []}');

beforeAll(async () => {
  api = createServer((req, res) => answer(req, res));
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  apiUrl = `http://127.0.0.1:${(api.address() as AddressInfo).port}/holds`;
});
afterAll(async () => {
  await new Promise<void>((resolve) => api.close(() => resolve()));
});

async function setup(apiOverride: Record<string, unknown> = {}): Promise<string> {
  await createEventsTable(fx.db, { rows: 30, stepMinutes: 60, endDaysAgo: 11 });
  await fx.db.query(`CREATE TABLE legal_holds (table_name text, record_filter text, reason text, set_by text, expires_at timestamptz)`);
  await fx.db.query(`INSERT INTO legal_holds VALUES ('events', 'id <= 4', 'Case 1', 'counsel', NULL), ('events', NULL, 'Case old', 'counsel', '2020-01-01Z')`);
  const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-holds-'));
  const file = path.join(dir, 'config.yaml');
  await writeFile(
    file,
    JSON.stringify({
      s3: fx.s3cfg,
      legal_holds: {
        holds: [{ table: 'public.events', where: "kind = 'kind0'", reason: 'Case 2', set_by: 'legal' }],
        check_table: {},
        api: { url: apiUrl, auth_env: 'HOLDS_TOKEN', timeout_ms: 2000, ...apiOverride },
      },
      defaults: { retention_days: 10 },
      databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }],
    }),
  );
  return file;
}

describe('auditlog holds list', () => {
  it('lists holds of every source, active and expired, with the rows each keeps', async () => {
    const file = await setup();
    let auth: string | undefined;
    answer = (req, res) => {
      auth = req.headers.authorization;
      res.end(JSON.stringify({ holds: [{ table: 'events', reason: 'Regulator', expires_at: '2999-01-01T00:00:00Z' }] }));
    };
    const r = await runCli(['holds', 'list', '-c', file, '--json'], { HOLDS_TOKEN: TOKEN });
    expect(r.code).toBe(0);
    expect(auth).toBe(TOKEN);
    const out = JSON.parse(r.stdout) as { holds: HoldReport[]; problems: string[] };
    const summary = out.holds.map((h) => [h.source, h.level, h.status, h.reason, h.affects.map((a) => a.rows_held)]);
    expect(summary).toEqual([
      ['config', 'record', 'active', 'Case 2', [6]],
      ['api', 'table', 'active', 'Regulator', [null]],
      ['check_table', 'record', 'active', 'Case 1', [4]],
      ['check_table', 'table', 'expired', 'Case old', [null]],
    ]);
    const text = await runCli(['holds', 'list', '-c', file], { HOLDS_TOKEN: TOKEN });
    expect(text.stdout).toContain("ACTIVE config hold on public.events: rows where kind = 'kind0'; Case 2 (set by legal); no expiry");
    expect(text.stdout).toContain('app/public.events: 6 row(s) held');
    expect(text.stdout).toContain('EXPIRED check_table hold on app/events: whole table; Case old');
  });

  it('a failing API is exit 1 with the reason; the credential appears nowhere, even when the server echoes it', async () => {
    const file = await setup();
    answer = (req, res) => res.writeHead(401).end(`bad token ${String(req.headers.authorization)}`);
    const r = await runCli(['holds', 'list', '-c', file], { HOLDS_TOKEN: TOKEN });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('answered HTTP 401');
    expect(r.stdout + r.stderr).not.toContain(TOKEN);
  });

  describe('a holds API that cannot be called never prints the URL\'s userinfo or query token, nor the auth header\'s value', () => {
    // Found in review: undici's messages carry the whole URL or the header value, and they went into the error.
    const SECRETS = ['u:pw', 'QTOKEN', 'SECRET_TOK'];
    const noSecret = (text: string): void => {
      for (const secret of SECRETS) expect(text).not.toContain(secret);
    };
    const port = (): string => new URL(apiUrl).port;

    it.each([
      ['a URL with user:password@ and ?token=', (p: string) => `http://u:pw@127.0.0.1:${p}/v1/holds?token=QTOKEN`, 'TOKEN-ok', 'contains a user name or password'],
      ['an auth_env value that is not a valid header value', (p: string) => `http://127.0.0.1:${p}/v1/holds?token=QTOKEN`, 'Bearer SECRET_TOK\nX', 'is not a valid HTTP header value'],
      ['an endpoint that refuses connections', () => 'http://127.0.0.1:9/v1/holds?token=QTOKEN', 'Bearer SECRET_TOK', 'could not be reached'],
    ])('%s: holds list exits 1, archive keeps every row; neither prints a secret', async (_name, url, token, expected) => {
      const file = await setup({ url: url(port()) });
      const list = await runCli(['holds', 'list', '-c', file], { HOLDS_TOKEN: token });
      expect(list.code).toBe(1);
      expect(list.stdout).toContain(expected);
      expect(list.stdout).toContain('/v1/holds');
      noSecret(list.stdout + list.stderr);
      for (const args of [[], ['--json']]) {
        const run = await runCli(['archive', '-c', file, ...args], { HOLDS_TOKEN: token });
        expect(run.code).toBe(1);
        expect(run.stdout + run.stderr).toContain('LEGAL_HOLD_UNAVAILABLE');
        expect(run.stdout + run.stderr).toContain(expected);
        noSecret(run.stdout + run.stderr);
      }
      expect((await fx.db.query('SELECT count(*)::int AS n FROM events')).rows[0]).toEqual({ n: 30 });
    });
  });

  it('a holds-table row without a table name is a problem (exit 1) naming the holds table, not silently dropped', async () => {
    const file = await setup();
    await fx.db.query(`INSERT INTO legal_holds VALUES (NULL, NULL, 'Case 5', 'counsel', NULL), ('', 'id = 1', 'Case 6', NULL, NULL)`);
    answer = (_req, res) => res.end('{"holds": []}');
    const r = await runCli(['holds', 'list', '-c', file, '--json'], { HOLDS_TOKEN: TOKEN });
    expect(r.code).toBe(1);
    const out = JSON.parse(r.stdout) as { holds: HoldReport[]; problems: string[] };
    expect(out.problems.join('\n')).toMatch(/public\.legal_holds in database app has 2 row\(s\) whose table_name is NULL or blank/);
  });

  it('--table/--database: a hold on a configured table outside the selection is not a problem; one naming no configured table still is', async () => {
    // Found in review: `holds list --table X` reported every hold on other tables as a problem and exited 1.
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 60, endDaysAgo: 11 });
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 60, endDaysAgo: 11, table: 'other_events' });
    const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-holds-'));
    const write = async (holds: Record<string, unknown>[]): Promise<string> => {
      const file = path.join(dir, `config-${holds.length}.yaml`);
      const tables = [eventsTable, { name: 'other_events', timestamp_column: 'happened_at' }];
      await writeFile(file, JSON.stringify({ s3: fx.s3cfg, legal_holds: { holds }, defaults: { retention_days: 10 }, databases: [{ name: 'app', url: fx.db.url, tables }] }));
      return file;
    };
    const good = await write([
      { table: 'events', where: 'id = 1', reason: 'Case 1' },
      { table: 'other_events', reason: 'Case 2' },
    ]);
    for (const args of [['--table', 'events'], ['--table', 'public.events'], ['--database', 'app', '--table', 'events']]) {
      const r = await runCli(['holds', 'list', '-c', good, '--json', ...args]);
      expect(r.code).toBe(0);
      const out = JSON.parse(r.stdout) as { holds: HoldReport[]; problems: string[] };
      expect(out.problems).toEqual([]);
      expect(out.holds.map((h) => [h.reason, h.affects.map((a) => a.table)])).toEqual([
        ['Case 1', ['events']],
        ['Case 2', []],
      ]);
    }
    const text = await runCli(['holds', 'list', '-c', good, '--table', 'events']);
    expect(text.stdout).toContain('affects no selected table');
    // An expired hold is described as truly: on a configured table outside the selection, or on no configured table (found by probing).
    const expired = await write([
      { table: 'events', reason: 'Case 1' },
      { table: 'other_events', reason: 'Case 4', expires_at: '2020-01-01T00:00:00Z' },
      { table: 'gone_events', reason: 'Case 5', expires_at: '2020-01-01T00:00:00Z' },
    ]);
    const old = await runCli(['holds', 'list', '-c', expired, '--table', 'events']);
    expect(old.code, old.stdout).toBe(0);
    expect(old.stdout).toMatch(/EXPIRED config hold on other_events: whole table; Case 4; expired 2020-01-01T00:00:00Z\n {2}affects no selected table\n/);
    expect(old.stdout).toMatch(/EXPIRED config hold on gone_events: whole table; Case 5; expired 2020-01-01T00:00:00Z\n {2}affects no configured table\n/);
    const oldJson = JSON.parse((await runCli(['holds', 'list', '-c', expired, '--table', 'events', '--json'])).stdout) as { holds: HoldReport[] };
    expect(oldJson.holds.map((h) => [h.reason, h.outside_selection ?? false])).toEqual([
      ['Case 1', false],
      ['Case 4', true],
      ['Case 5', false],
    ]);
    const bad = await write([{ table: 'events', reason: 'Case 1' }, { table: 'other_evnets', reason: 'Case 2' }, { table: 'other_events', reason: 'Case 3' }]);
    const r = await runCli(['holds', 'list', '-c', bad, '--table', 'events']);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('active config hold on other_evnets names no configured table');
    expect(r.stdout).not.toContain('hold on other_events names');
  });

  it('a database that cannot be reached: its configured holds still list the tables they name, rows not counted (not "affects no selected table")', async () => {
    await createEventsTable(fx.db, { rows: 5, stepMinutes: 60, endDaysAgo: 11 });
    const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-holds-'));
    const file = path.join(dir, 'config.yaml');
    const holds = [
      { table: 'events', where: 'id = 1', reason: 'Case 1' },
      { table: 'events', reason: 'Case 2' },
    ];
    await writeFile(file, JSON.stringify({ s3: fx.s3cfg, legal_holds: { holds }, defaults: { retention_days: 10 }, databases: [{ name: 'app', url: 'postgres://postgres@127.0.0.1:1/app', tables: [eventsTable] }] }));
    const r = await runCli(['holds', 'list', '-c', file]);
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain('affects no');
    expect(r.stdout).toContain('  app/public.events — rows not counted: database app unreachable\n');
    expect(r.stdout).toMatch(/ACTIVE config hold on events: whole table; Case 2; no expiry\n {2}app\/public\.events\n/);
    expect(r.stdout).toMatch(/problem: database app: /);
  });

  it('auth_env naming an unset variable is a configuration error (exit 2) naming the variable', async () => {
    const file = await setup();
    const r = await runCli(['holds', 'list', '-c', file], { HOLDS_TOKEN: '' });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('HOLDS_TOKEN');
    expect(r.stderr).toContain('CONFIG_ENV_MISSING');
  });
});
