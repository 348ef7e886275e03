/**
 * Keys of objects archived under different primary-key definitions (key-definitions.ts): how they
 * compare, and when a key found under two definitions may load. No database.
 */
import { describe, expect, it } from 'vitest';
import { crossDefinitionRefusal, keyDefinitions, type LoadPlan } from '../../src/restore/key-definitions.js';
import type { Candidate } from '../../src/restore/restore-options.js';
import { loadSupersededLines } from '../../src/restore/superseded-lines.js';
import { metadataKeyFor } from '../../src/core/archive-layout.js';
import { sha256Hex } from '../../src/core/batch-metadata.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

const object = (key: string, run: string, pk: string[]): Candidate => ({ key, meta: { run_id: run, primary_key_columns: pk } }) as unknown as Candidate;
const old = object('a', '20200101T000000Z-1', ['id']);
const neu = object('b', '20200201T000000Z-1', ['id', 'created_at']);

describe('keyDefinitions', () => {
  it('one definition: the manifest key text, as before', () => {
    const d = keyDefinitions([old, object('c', 'r', ['id'])]);
    expect(d.mixed).toBe(false);
    expect(d.identity(old.meta, ['3'])).toBe('["3"]');
    expect(d.projection(old.meta, ['3'])).toBe('["3"]');
  });

  it('two definitions: projected on the shared columns, identified under their own definition only', () => {
    const d = keyDefinitions([old, neu]);
    expect(d.mixed).toBe(true);
    expect(d.common).toEqual(['id']);
    expect(d.projection(old.meta, ['3'])).toBe(d.projection(neu.meta, ['3', 'T']));
    expect(d.identity(old.meta, ['3'])).not.toBe(d.identity(neu.meta, ['3', 'T']));
    // The same columns in another order, or renamed through column_map, are one definition.
    const swapped = object('c', 'r', ['created_at', 'id']);
    expect(keyDefinitions([neu, swapped]).identity(swapped.meta, ['T', '3'])).toBe(keyDefinitions([neu, swapped]).identity(neu.meta, ['3', 'T']));
    const renamed = keyDefinitions([object('d', 'r', ['event_id']), object('e', 'r', ['id'])], { event_id: 'id' });
    expect(renamed.definition(object('d', 'r', ['event_id']).meta)).toBe(renamed.definition(object('e', 'r', ['id']).meta));
    expect(keyDefinitions([object('d', 'r', ['id']), object('e', 'r', ['uid'])]).common).toEqual([]);
  });
});

describe('crossDefinitionRefusal', () => {
  const defs = keyDefinitions([old, neu]);
  const found = { earlier: old, later: neu, columns: ['id'], values: ['3'] };
  // The load order (runsOldestFirst): the run of `old` first, then that of `neu`.
  const inOrder = (...runs: string[]): Map<string, number> => new Map(runs.map((r, i) => [r, i]));
  const plan = (over: Partial<LoadPlan>): LoadPlan => ({ strategy: 'overwrite', targetKey: ['id', 'created_at'], toLoad: new Set(['a', 'b']), label: 'public.t', runPosition: inOrder(old.meta.run_id, neu.meta.run_id), ...over });

  it('loads with overwrite/upsert into a table keyed by the later definition, the older version first', () => {
    expect(crossDefinitionRefusal(found, defs, plan({}))).toBeUndefined();
    expect(crossDefinitionRefusal(found, defs, plan({ strategy: 'upsert', targetKey: ['created_at', 'id'] }))).toBeUndefined();
    // The older version restored before: the later one overwrites it.
    expect(crossDefinitionRefusal(found, defs, plan({ toLoad: new Set(['b']) }))).toBeUndefined();
    // Neither loads: nothing to decide.
    expect(crossDefinitionRefusal(found, defs, plan({ strategy: 'skip', toLoad: new Set() }))).toBeUndefined();
  });

  it.each([
    [{ strategy: 'skip' as const }, '--conflict skip would keep the version loaded first, the older one'],
    [{ strategy: 'fail' as const }, '--conflict fail would stop on the second version'],
    [{ targetKey: ['id'] }, 'the key of public.t is (id), not (id, created_at)'],
    [{ toLoad: new Set(['a']) }, 'was restored into public.t before (restore watermark)'],
  ])('refuses %j', (over, reason) => {
    const e = crossDefinitionRefusal(found, defs, plan(over));
    expect(e?.code).toBe('SCHEMA_DRIFT');
    expect(e?.message).toContain('key (id)=("3") was archived under primary key (id) (archive object a) and again, later, under primary key (id, created_at) (archive object b)');
    expect(e?.message).toContain(reason);
    expect(e?.message).not.toContain('\n');
  });

  it('lets --conflict fail load when only the later version loads: the older one, restored before, is a conflict it stops on', () => {
    expect(crossDefinitionRefusal(found, defs, plan({ strategy: 'fail', toLoad: new Set(['b']) }))).toBeUndefined();
  });

  it.each(['overwrite', 'upsert', 'skip', 'fail'] as const)('refuses a later key narrower than the earlier one under %s: rows the earlier kept apart would merge', (strategy) => {
    // (id, created_at) then (id): [3, t1] and [3, t2] were two rows.
    const e = crossDefinitionRefusal({ earlier: neu, later: object('c', '20200301T000000Z-1', ['id']), columns: ['id'], values: ['3'] }, keyDefinitions([neu, object('c', 'r', ['id'])]), plan({ strategy, targetKey: ['id'] }));
    expect(e?.code).toBe('SCHEMA_DRIFT');
    expect(e?.message).toContain('the later key lacks (created_at), so rows the earlier key kept apart would be merged into one');
    expect(e?.message).toContain('a table keyed by (id, created_at)');
  });

  it('refuses when the run that archived the later version would load first', () => {
    const early = object('b', '20190101T000000Z-1', ['id', 'created_at']);
    expect(crossDefinitionRefusal({ ...found, later: early }, keyDefinitions([old, early]), plan({ runPosition: inOrder(early.meta.run_id, old.meta.run_id) }))?.message).toContain('the older version would load last');
    // By the load order, not by run id: two runs in one second sort by id either way (found flaky in CI).
    const sameSecond = object('b', '20200101T000000Z-0', ['id', 'created_at']);
    expect(crossDefinitionRefusal({ ...found, later: sameSecond }, keyDefinitions([old, sameSecond]), plan({ runPosition: inOrder(old.meta.run_id, sameSecond.meta.run_id) }))).toBeUndefined();
    expect(crossDefinitionRefusal({ ...found, later: sameSecond }, keyDefinitions([old, sameSecond]), plan({ runPosition: inOrder(sameSecond.meta.run_id, old.meta.run_id) }))?.message).toContain('the older version would load last');
  });
});

describe('loadSupersededLines over objects of two key definitions', () => {
  const id = { database: 'db', schema: 'public', table: 't' };
  const columns = [
    { name: 'id', type: 'bigint' },
    { name: 'created_at', type: 'timestamp with time zone' },
  ];
  function store(objects: [string, string, string[], string[][]][]): { store: ObjectStore; all: Candidate[] } {
    const bodies = new Map<string, Buffer>();
    const all = objects.map(([short, run, pk, keys], i) => {
      const key = `t/day=01/${short}.jsonl.gz`;
      const meta = { format: 'auditlog-archive', format_version: 1, ...id, columns, primary_key_columns: pk, primary_keys: keys, xmins: keys.map((_, j) => `${key}:${j}`), record_count: keys.length, sha256_compressed: 'c', sha256_uncompressed: 'u', run_id: run };
      const body = Buffer.from(JSON.stringify(meta));
      bodies.set(metadataKeyFor(key), body);
      return { key, meta: { run_id: run, sha256_compressed: 'c', record_count: keys.length, columns, primary_key_columns: pk, min_primary_key: [], max_primary_key: [], sidecar_sha256: sha256Hex(body), created_at: `2026-01-0${i + 1}T00:00:00.000Z` } } as Candidate;
    });
    return { store: { get: async (key: string) => bodies.get(key) } as unknown as ObjectStore, all };
  }

  const key = (short: string): string => `t/day=01/${short}.jsonl.gz`;
  const name = (k: string): string => k.replace(/^t\/day=01\/(.*)\.jsonl\.gz$/, '$1');
  it.each([
    ['one pass', {}],
    ['several passes and slices, every hash colliding', { hash: () => 7, keysPerPass: 3, keysPerSlice: 1 }],
  ])('hands each key archived under both to the policy, and supersedes none across definitions (%s)', async (_, tuning) => {
    const { store: s, all } = store([
      ['a', 'r1', ['id'], [['1'], ['2'], ['3']]],
      ['b', 'r2', ['id', 'created_at'], [['2', 'T2'], ['3', 'T3'], ['3', 'T3b']]],
      ['c', 'r3', ['id', 'created_at'], [['4', 'T4'], ['3', 'T3']]],
    ]);
    const seen: string[] = [];
    const superseded = await loadSupersededLines(s, all, new Set(all.map((c) => c.key)), id, tuning, {
      onCrossDefinition: (found) => seen.push(`${found.values.join()}:${name(found.earlier.key)}<${name(found.later.key)}`),
    });
    expect([...new Set(seen)].sort()).toEqual(['2:a<b', '3:a<b', '3:a<c']);
    // (3, T3) under (id, created_at) in b, again in c: b's line is superseded as before; nothing of a is.
    expect([...superseded.keys()].map(name)).toEqual(['b']);
    expect(superseded.get(key('b'))!.has(1)).toBe(true);
    expect(superseded.get(key('b'))!.has(2)).toBe(false);
  });
});
