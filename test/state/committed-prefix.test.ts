import { describe, expect, it } from 'vitest';
import { CommittedPrefix } from '../../src/archive/committed-prefix.js';
import { usableWatermark, watermarkFor, parseCheckpoint, parseTableState, emptyTableState, CHECKPOINT_FORMAT, type Checkpoint } from '../../src/state/table-state.js';
import { AuditlogError } from '../../src/core/errors.js';
import { selectTargets } from '../../src/archive/run-archive.js';
import type { TablePlan } from '../../src/core/table-plan.js';

const pos = (n: number) => ({ ts: `2024-01-0${n} 00:00:00+00`, key: [String(n)] });

describe('CommittedPrefix', () => {
  it('moves only past batches whose predecessors all committed, whatever order they finish in', () => {
    const p = new CommittedPrefix(pos(0));
    const [a, b, c] = [p.add(pos(1)), p.add(pos(2)), p.add(pos(3))];
    expect(p.complete(c)).toBe(false);
    expect(p.position).toEqual(pos(0));
    expect(p.complete(a)).toBe(true);
    expect(p.position).toEqual(pos(1));
    expect(p.complete(b)).toBe(true);
    expect(p.position).toEqual(pos(3));
    expect(p.committed).toBe(3);
  });
  it('never passes a batch that does not complete (it failed), and ignores a second completion', () => {
    const p = new CommittedPrefix(null);
    const a = p.add(pos(1));
    p.add(pos(2));
    const c = p.add(pos(3));
    p.complete(a);
    p.complete(c);
    expect(p.complete(c)).toBe(false);
    expect(p.position).toEqual(pos(1));
    expect(p.committed).toBe(2);
  });
});

const plan = {
  database: 'app', schema: 'public', table: 'events', oid: 42,
  timestampColumn: { name: 'happened_at' }, primaryKey: [{ name: 'id' }],
} as unknown as TablePlan;

describe('usableWatermark', () => {
  it('uses a watermark written for the same table, column and key; ignores others with the reason', () => {
    const wm = watermarkFor(plan, pos(1), 'r', new Date(0));
    expect(usableWatermark(plan, wm)).toEqual({ position: pos(1) });
    expect(usableWatermark(plan, null)).toEqual({ position: null });
    expect(usableWatermark(plan, { ...wm, table_oid: 7 }).ignored).toContain('recreated');
    expect(usableWatermark(plan, { ...wm, timestamp_column: 'created_at' }).ignored).toContain('timestamp_column created_at');
    expect(usableWatermark(plan, { ...wm, primary_key: ['a', 'b'] }).ignored).toContain('primary key (a, b)');
    expect(usableWatermark(plan, { ...wm, position: { ts: 'x', key: ['1', '2'] } }).position).toBeNull();
  });
});

describe('parseTableState and parseCheckpoint', () => {
  const id = { database: 'app', schema: 'public', table: 'events' };
  const where = '/archive/_auditlog/state/app/public.events.json';
  const state = { ...emptyTableState(id), watermark: watermarkFor(plan, pos(2), 'r', new Date(0)), last_run: null };
  const secret = 'SECRET-ROW-VALUE';

  function invalid(parse: () => unknown): AuditlogError {
    try {
      parse();
    } catch (error) {
      expect(error).toBeInstanceOf(AuditlogError);
      return error as AuditlogError;
    }
    throw new Error('parsed');
  }

  it('round-trips a state with a watermark and a last run', () => {
    const withRun = {
      ...state,
      last_run: { run_id: 'r', status: 'failed', started_at: '2024-01-01T00:00:00.000Z', finished_at: '2024-01-01T00:01:00.000Z', rows_archived: 3, rows_skipped: 0, batches: 1, error: { code: 'X', message: 'y' }, stopped: true },
    };
    expect(parseTableState(JSON.stringify(withRun), id, where)).toEqual(withRun);
    expect(parseTableState(JSON.stringify(emptyTableState(id)), id, where)).toEqual(emptyTableState(id));
  });

  it.each(['2024-01-02 00:00:00+00', '2024-01-02 00:00:00.123456+05:30', '2024-01-02 00:00:00', '2024-01-02', '0044-03-15 00:00:00+00 BC', 'infinity', '-infinity', '12024-01-02 00:00:00+00'])(
    'takes the position timestamp %j (PostgreSQL text of timestamptz, timestamp, date)',
    (ts) => {
      const doc = { ...state, watermark: { ...state.watermark, position: { ts, key: ['2'] } } };
      expect(parseTableState(JSON.stringify(doc), id, where).watermark!.position.ts).toBe(ts);
    },
  );

  const broken: [string, unknown, string][] = [
    ['not JSON', `{"format": "auditlog-table-state", ${secret}`, 'it is not JSON'],
    ['not an object', JSON.stringify([secret]), 'it is not a JSON object'],
    ['another format', JSON.stringify({ ...state, format: secret }), 'its format is not auditlog-table-state'],
    ['an older version', JSON.stringify({ ...state, version: 0 }), 'its version 0 is not supported (expected 1)'],
    ['another table', JSON.stringify({ ...state, table: secret }), 'it names another table'],
    ['a watermark that is no object', JSON.stringify({ ...state, watermark: secret }), 'watermark is not an object'],
    ['a timestamp PostgreSQL would take but did not write', JSON.stringify({ ...state, watermark: { ...state.watermark, position: { ts: 'yesterday', key: [secret] } } }), 'watermark.position.ts is not a PostgreSQL timestamp'],
    ['a timestamp that is no timestamp', JSON.stringify({ ...state, watermark: { ...state.watermark, position: { ts: `2024-01-02 00:00:00+00; DROP TABLE ${secret}`, key: ['1'] } } }), 'watermark.position.ts is not a PostgreSQL timestamp'],
    ['a number as timestamp', JSON.stringify({ ...state, watermark: { ...state.watermark, position: { ts: 1, key: ['1'] } } }), 'watermark.position.ts is not a PostgreSQL timestamp'],
    ['a number as key value', JSON.stringify({ ...state, watermark: { ...state.watermark, position: { ts: pos(1).ts, key: [1] } } }), 'watermark.position.key is not a list of key values'],
    ['no key', JSON.stringify({ ...state, watermark: { ...state.watermark, position: { ts: pos(1).ts, key: [] } } }), 'watermark.position.key is not a list of key values'],
    ['more key values than key columns', JSON.stringify({ ...state, watermark: { ...state.watermark, position: { ts: pos(1).ts, key: ['1', secret] } } }), 'watermark.position.key has 2 value(s) for a primary key of 1 column(s)'],
    ['no table oid', JSON.stringify({ ...state, watermark: { ...state.watermark, table_oid: secret } }), 'watermark.table_oid is not an oid'],
    ['no primary key', JSON.stringify({ ...state, watermark: { ...state.watermark, primary_key: [] } }), 'watermark.primary_key is not a list of column names'],
    ['a last run of unknown status', JSON.stringify({ ...state, last_run: { run_id: 'r', status: secret } }), 'last_run.status is not one of archived, nothing-to-archive, failed'],
    ['a last run without counts', JSON.stringify({ ...state, last_run: { run_id: 'r', status: 'archived', started_at: '2024-01-01T00:00:00Z', finished_at: '2024-01-01T00:00:00Z', rows_archived: -1 } }), 'last_run.rows_archived is not a count'],
  ];
  it.each(broken)('refuses a table state with %s: STATE_INVALID naming the document, the field and the fix, not its content', (_, text, problem) => {
    const e = invalid(() => parseTableState(text as string, id, where));
    expect(e.code).toBe('STATE_INVALID');
    expect(e.exitCode).toBe(1);
    expect(e.message).toBe(
      `the table state of app/public.events at ${where} is not valid (${problem}): run \`auditlog watermarks reset --database app --table public.events\` to discard it (a lost watermark costs a longer scan, never a row; the last-run record goes with it)`,
    );
    expect(JSON.stringify(e.toJSON())).not.toContain(secret);
  });

  it('names a reset command that runs as printed for hostile names: quoted for --table and for the shell', () => {
    const hostile = { database: "o'brien app", schema: 'a.b', table: 'weird "name";' };
    const e = invalid(() => parseTableState('{', hostile, where));
    expect(e.message).toContain(`run \`auditlog watermarks reset --database 'o'\\''brien app' --table '"a.b"."weird ""name"";"'\` to discard it`);
    // What the shell hands over is what --table reads back as this one table.
    const config = { databases: [{ name: hostile.database, tables: [{ schema: 'a', name: 'b.weird "name";' }, { schema: hostile.schema, name: hostile.table }] }] };
    expect(selectTargets({ config: config as never, database: hostile.database, table: '"a.b"."weird ""name"";"' })[0]!.tables).toEqual([{ schema: hostile.schema, name: hostile.table }]);
  });

  it('says a newer version may be read by upgrading, and only for a table state of a newer version', () => {
    const e = invalid(() => parseTableState(JSON.stringify({ ...state, version: 2 }), id, where));
    expect(e.message).toContain('(its version 2 was written by a newer auditlog (this one reads version 1)): upgrade auditlog, or run `auditlog watermarks reset');
    expect(invalid(() => parseTableState(JSON.stringify({ ...state, format: 'x', version: 2 }), id, where)).message).toContain('(its format is not auditlog-table-state): run `auditlog');
  });

  it('refuses a checkpoint that is not JSON, of another table or with a broken position, and takes one without a position', () => {
    const cp: Checkpoint = { format: CHECKPOINT_FORMAT, ...id, run_id: 'r', started_at: '2024-01-01T00:00:00.000Z', updated_at: '2024-01-01T00:00:00.000Z', batches_committed: 2, rows_archived: 20, position: pos(1) };
    const at = '/archive/_auditlog/checkpoints/app/public.events.json';
    expect(parseCheckpoint(JSON.stringify(cp), id, at)).toEqual(cp);
    expect(parseCheckpoint(JSON.stringify({ ...cp, position: null }), id, at).position).toBeNull();
    for (const [text, problem] of [
      ['{', 'it is not JSON'],
      [JSON.stringify({ ...cp, schema: secret }), 'it names another table'],
      [JSON.stringify({ ...cp, position: { ts: secret, key: ['1'] } }), 'position.ts is not a PostgreSQL timestamp'],
      [JSON.stringify({ ...cp, batches_committed: '2' }), 'batches_committed is not a count'],
    ] as const) {
      const e = invalid(() => parseCheckpoint(text, id, at));
      expect(e.code).toBe('STATE_INVALID');
      expect(e.message).toBe(`the checkpoint of app/public.events at ${at} is not valid (${problem}): run \`auditlog watermarks reset --database app --table public.events\` to discard it (it only records how far an interrupted run got; no row depends on it)`);
      expect(e.message).not.toContain(secret);
    }
  });
});
