import { describe, expect, it } from 'vitest';
import { CommittedPrefix } from '../../src/archive/committed-prefix.js';
import { usableWatermark, watermarkFor, parseTableState, emptyTableState } from '../../src/state/table-state.js';
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

describe('parseTableState', () => {
  const id = { database: 'app', schema: 'public', table: 'events' };
  it('round-trips a state and refuses another format, version, table or a broken position', () => {
    const state = { ...emptyTableState(id), watermark: watermarkFor(plan, pos(2), 'r', new Date(0)) };
    expect(parseTableState(JSON.stringify(state), id)).toEqual(state);
    expect(() => parseTableState('{"format":"x"}', id)).toThrow(/not a table state/);
    expect(() => parseTableState(JSON.stringify({ ...state, version: 2 }), id)).toThrow(/version 2/);
    expect(() => parseTableState(JSON.stringify(state), { ...id, table: 'other' })).toThrow(/belongs to app\/public.events/);
    expect(() => parseTableState(JSON.stringify({ ...state, watermark: { ...state.watermark, position: { ts: 1 } } }), id)).toThrow(/no valid position/);
  });
});
