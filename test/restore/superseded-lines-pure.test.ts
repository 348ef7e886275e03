/**
 * The bounded superseded check (superseded-lines.ts, key-hashes.ts, line-set.ts) against the
 * straightforward one it replaced (every key's text held in one Map), on sidecars in memory:
 * forced hash collisions, keys split over several passes and slices, rewritten sidecars, objects
 * skipped by the watermark. No database.
 */
import { describe, expect, it } from 'vitest';
import { metadataKeyFor } from '../../src/core/archive-layout.js';
import { sha256Hex } from '../../src/core/batch-metadata.js';
import { duplicateHashes, hashKeyText, HashList, indexOfHash } from '../../src/restore/key-hashes.js';
import { LineSet } from '../../src/restore/line-set.js';
import type { Candidate } from '../../src/restore/restore-options.js';
import { archiveOrder, loadSupersededLines, runsOldestFirst, type SupersededTuning } from '../../src/restore/superseded-lines.js';
import type { ObjectStore } from '../../src/storage/object-store.js';

const id = { database: 'db', schema: 'public', table: 'events' };
const columns = [
  { name: 'id', type: 'text' },
  { name: 'note', type: 'text' },
];

interface Fixture {
  store: ObjectStore;
  candidates: Candidate[];
  gets: string[];
  bodies: Map<string, Buffer>;
}

/** Objects as [object key, run id, keys, xmins?]; each gets a well-formed sidecar in an in-memory store. */
function fixture(objects: ([string, string, string[]] | [string, string, string[], string[]])[]): Fixture {
  const bodies = new Map<string, Buffer>();
  const gets: string[] = [];
  const candidates = objects.map(([key, run, keys, givenXmins]) => {
    const meta = {
      format: 'auditlog-archive',
      format_version: 1,
      ...id,
      columns,
      primary_key_columns: ['id'],
      primary_keys: keys.map((k) => [k]),
      xmins: givenXmins ?? keys.map((_, i) => `${key}:${i}`), // one row version per line unless given: a copy shares its key's xmin
      record_count: keys.length,
      sha256_compressed: 'c',
      sha256_uncompressed: 'u',
      run_id: run,
    };
    const body = Buffer.from(JSON.stringify(meta));
    bodies.set(metadataKeyFor(key), body);
    const summary = { run_id: run, sha256_compressed: 'c', record_count: keys.length, columns, primary_key_columns: ['id'], min_primary_key: [], max_primary_key: [], sidecar_sha256: sha256Hex(body), created_at: '2026-01-01T00:00:00.000Z' };
    return { key, meta: summary } as Candidate;
  });
  const store = {
    get: async (key: string) => {
      gets.push(key);
      return bodies.get(key);
    },
  } as unknown as ObjectStore;
  return { store, candidates, gets, bodies };
}

/** The check as it was: every key of every object in one Map, in archive order (text keys: every object, of one run or more). */
async function straightforward(f: Fixture, toLoad: ReadonlySet<string>): Promise<Record<string, number[]>> {
  const seen = new Map<string, { object: string; line: number }>();
  const out: Record<string, number[]> = {};
  for (const o of archiveOrder(f.candidates)) {
    const body = f.bodies.get(metadataKeyFor(o.key));
    if (body === undefined || sha256Hex(body) !== o.meta.sidecar_sha256) continue;
    (JSON.parse(body.toString()) as { primary_keys: string[][] }).primary_keys.forEach((k, line) => {
      const text = JSON.stringify(k);
      const earlier = seen.get(text);
      if (earlier !== undefined && toLoad.has(earlier.object)) (out[earlier.object] ??= []).push(earlier.line);
      seen.set(text, { object: o.key, line });
    });
  }
  for (const lines of Object.values(out)) lines.sort((a, b) => a - b);
  return out;
}

async function bounded(f: Fixture, toLoad: ReadonlySet<string>, tuning?: SupersededTuning): Promise<Record<string, number[]>> {
  const result = await loadSupersededLines(f.store, f.candidates, toLoad, id, tuning);
  const out: Record<string, number[]> = {};
  for (const [key, lines] of result) {
    const count = f.candidates.find((c) => c.key === key)!.meta.record_count;
    out[key] = [...Array(count).keys()].filter((l) => lines.has(l));
    expect(lines.size).toBe(out[key]!.length);
  }
  return out;
}

const obj = (day: string, n: number) => `t/day=${day}/o${n}.jsonl.gz`;

describe('loadSupersededLines', () => {
  it('never supersedes a line whose key only shares a hash with a later one', async () => {
    const f = fixture([
      [obj('01', 1), 'r1', ['a', 'b', 'c']],
      [obj('02', 1), 'r2', ['x', 'b', 'y']],
    ]);
    const toLoad = new Set(f.candidates.map((c) => c.key));
    // Every key hashes to 0: all of them are candidates, and only "b" is the same key.
    expect(await bounded(f, toLoad, { hash: () => 0 })).toEqual({ [obj('01', 1)]: [1] });
    // No key shared at all: colliding hashes alone supersede nothing.
    const g = fixture([
      [obj('01', 1), 'r1', ['a', 'b']],
      [obj('02', 1), 'r2', ['c', 'd']],
    ]);
    expect(await bounded(g, new Set(g.candidates.map((c) => c.key)), { hash: () => 7 })).toEqual({});
  });

  it('reads the sidecars once more only when some hash is seen twice', async () => {
    const f = fixture([
      [obj('01', 1), 'r1', ['a', 'b']],
      [obj('02', 1), 'r2', ['c', 'd']],
      [obj('03', 1), 'r2', ['e', 'a']],
    ]);
    const toLoad = new Set(f.candidates.map((c) => c.key));
    const identity = (t: string) => t.charCodeAt(2);
    expect(await bounded(f, toLoad, { hash: identity })).toEqual({ [obj('01', 1)]: [0] });
    // Hashing pass: three GETs; comparison: only the two objects holding "a".
    expect(f.gets).toEqual([obj('01', 1), obj('02', 1), obj('03', 1), obj('01', 1), obj('03', 1)].map(metadataKeyFor));
  });

  it('keeps the archive order, watermark-skipped objects and rewritten sidecars as before', async () => {
    const f = fixture([
      // Listed out of order: run r2 archived after r1, whatever the object keys say.
      [obj('05', 1), 'r2', ['k1', 'k2']],
      [obj('01', 1), 'r1', ['k1', 'k2', 'k3']],
      [obj('09', 1), 'r3', ['k2']],
      [obj('03', 1), 'r1', ['k4']],
      [obj('07', 1), 'r3', ['k4']],
    ]);
    // obj 09 is skipped by the watermark (not loaded) yet supersedes; obj 07's sidecar was rewritten: it supersedes nothing.
    f.bodies.set(metadataKeyFor(obj('07', 1)), Buffer.from('{}'));
    const toLoad = new Set([obj('05', 1), obj('01', 1), obj('03', 1), obj('07', 1)]);
    const expected = { [obj('01', 1)]: [0, 1], [obj('05', 1)]: [1] };
    expect(await straightforward(f, toLoad)).toEqual(expected);
    for (const tuning of [{}, { hash: () => 0 }, { keysPerPass: 1 }, { keysPerSlice: 1 }, { hash: () => 3, keysPerPass: 2, keysPerSlice: 1 }]) {
      expect(await bounded(f, toLoad, tuning)).toEqual(expected);
    }
  });

  it('gives what the straightforward check gives, on random archives, over passes, slices and collisions', async () => {
    let seed = 12345;
    const random = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    let rounds = 0;
    for (let round = 0; round < 40; round++) {
      const objects: [string, string, string[]][] = [];
      const count = 2 + random(8);
      for (let i = 0; i < count; i++) {
        const keys = new Set<string>();
        const rows = random(30);
        for (let r = 0; r < rows; r++) keys.add(`key-${random(60)}`);
        objects.push([obj(String(10 + random(20)), i), `r${random(4)}`, [...keys]]);
      }
      const f = fixture(objects);
      if (random(3) === 0) f.bodies.delete(metadataKeyFor(f.candidates[random(count)]!.key));
      const toLoad = new Set(f.candidates.filter(() => random(4) !== 0).map((c) => c.key));
      const expected = await straightforward(f, toLoad);
      if (Object.keys(expected).length > 0) rounds++;
      for (const tuning of [{}, { hash: () => 0 }, { hash: (t: string) => t.length }, { keysPerPass: 7 }, { keysPerSlice: 2 }, { hash: (t: string) => t.charCodeAt(6) % 5, keysPerPass: 13, keysPerSlice: 1 }]) {
        expect(await bounded(f, toLoad, tuning)).toEqual(expected);
      }
    }
    // Most rounds have superseded lines, or the comparison proves little.
    expect(rounds).toBeGreaterThan(20);
  });
});

describe('archiveOrder', () => {
  const o = (key: string, run_id: string, created_at: string, delete_txid?: string) => ({ key, meta: { run_id, created_at, ...(delete_txid === undefined ? {} : { delete_txid }) } });
  it('orders one run\'s objects by their delete transactions (as numbers), not by key or clock', () => {
    const objects = [
      o('day=02/b', 'r2', '2026-01-01T00:00:01.000Z', '10'), // behind the watermark: an earlier day, a later delete (and a clock stepped back)
      o('day=10/a', 'r2', '2026-01-01T00:00:03.000Z', '9'),
    ];
    expect(archiveOrder(objects).map((x) => x.key)).toEqual(['day=10/a', 'day=02/b']);
  });
  it('orders objects of different runs by when they were written, not by when their runs started (runs may overlap)', () => {
    const objects = [
      o('day=01/a', '20261201T020000Z-aaaaaa', '2026-12-01T02:00:30.000Z', '5'), // the cron run of every table reached this table late
      o('day=01/b', '20261201T020005Z-bbbbbb', '2026-12-01T02:00:06.000Z', '9'), // a manual --table run, started later, archived first
    ];
    expect(archiveOrder(objects).map((x) => x.key)).toEqual(['day=01/b', 'day=01/a']);
  });
  it('orders runs started within the same second by when their objects were written, not by the run id\'s random suffix', () => {
    const objects = [o('day=01/a', '20261201T004312Z-ffffff', '2026-12-01T00:43:12.100Z', '7'), o('day=01/b', '20261201T004312Z-000000', '2026-12-01T00:43:12.900Z', '8')];
    expect(archiveOrder(objects).map((x) => x.key)).toEqual(['day=01/a', 'day=01/b']);
    expect(archiveOrder([objects[1]!, o('day=01/c', '20261201T004313Z-aaaaaa', '2026-12-01T00:43:13.000Z', '1')]).map((x) => x.key)).toEqual(['day=01/b', 'day=01/c']);
  });
  it('without delete_txid (sidecars of older versions), by creation time, then key', () => {
    const objects = [o('day=10/a', 'r1', '2026-01-01T00:00:01.000Z'), o('day=02/b', 'r1', '2026-01-01T00:00:02.000Z'), o('day=01/c', 'r1', '2026-01-01T00:00:02.000Z')];
    expect(archiveOrder(objects).map((x) => x.key)).toEqual(['day=10/a', 'day=01/c', 'day=02/b']);
  });
});

describe('runsOldestFirst (the restore\'s load order)', () => {
  const o = (key: string, run_id: string, created_at: string) => ({ key, meta: { run_id, created_at } });
  it('orders runs by their first object, not by run id: two runs in one second (found flaky in CI); the listing order within a run stays', () => {
    const objects = [
      o('day=01/a', '20261201T004312Z-000000', '2026-12-01T00:43:12.900Z'),
      o('day=01/b', '20261201T004312Z-ffffff', '2026-12-01T00:43:12.100Z'),
      o('day=03/c', '20261201T004312Z-000000', '2026-12-01T00:43:12.950Z'),
      o('day=02/d', '20261201T004312Z-000000', '2026-12-01T00:43:12.920Z'),
      o('day=02/e', '20261201T004312Z-ffffff', '2026-12-01T00:43:12.200Z'),
    ];
    expect(runsOldestFirst(objects).map((x) => x.key)).toEqual(['day=01/b', 'day=02/e', 'day=01/a', 'day=03/c', 'day=02/d']);
  });
});

describe('copies (the same key and xmin under two object names)', () => {
  it('are never superseded by each other, and a later version supersedes every copy of the earlier one (found in review)', async () => {
    const f = fixture([
      [obj('01', 1), 'r1', ['k'], ['100']],
      [obj('01', 2), 'r1', ['k'], ['100']], // a copy of o1
      [obj('02', 3), 'r2', ['k'], ['200']], // a later version
    ]);
    f.candidates.forEach((c, i) => ((c.meta as { created_at: string }).created_at = `2026-01-01T00:00:0${i}.000Z`));
    const all = new Set(f.candidates.map((c) => c.key));
    expect(await bounded(f, all)).toEqual({ [obj('01', 1)]: [0], [obj('01', 2)]: [0] });
    const copiesOnly = fixture([
      [obj('01', 1), 'r1', ['k'], ['100']],
      [obj('01', 2), 'r1', ['k'], ['100']],
    ]);
    expect(await bounded(copiesOnly, new Set(copiesOnly.candidates.map((c) => c.key)))).toEqual({});
  });
});

describe('key hashes', () => {
  it('hashes to integers below 2^53, the same text to the same hash', () => {
    for (const text of ['["a"]', '["b"]', '["00000000-0000-0000-0000-000000000001"]', '["1","x"]', '']) {
      const h = hashKeyText(text);
      expect(Number.isSafeInteger(h) && h >= 0).toBe(true);
      expect(hashKeyText(text)).toBe(h);
    }
    expect(hashKeyText('["a"]')).not.toBe(hashKeyText('["b"]'));
  });

  it('finds the hashes seen more than once, each once, and where they are', () => {
    const list = new HashList(1);
    for (const h of [5, 3, 9, 3, 5, 5, 1, 2 ** 53 - 1, 2 ** 53 - 1]) list.push(h);
    expect([...list.view()]).toEqual([5, 3, 9, 3, 5, 5, 1, 2 ** 53 - 1, 2 ** 53 - 1]);
    const dups = duplicateHashes(list.view());
    expect([...dups]).toEqual([3, 5, 2 ** 53 - 1]);
    expect([...list.view()].slice(0, 3)).toEqual([5, 3, 9]);
    expect([3, 5, 2 ** 53 - 1, 1, 9, 4].map((h) => indexOfHash(dups, h))).toEqual([0, 1, 2, -1, -1, -1]);
    expect(duplicateHashes(new Float64Array(0)).length).toBe(0);
  });
});

describe('LineSet', () => {
  it('holds lines as bits, counting each once', () => {
    const s = new LineSet(20);
    for (const l of [0, 7, 8, 19, 7]) s.add(l);
    expect(s.size).toBe(4);
    expect([...Array(24).keys()].filter((l) => s.has(l))).toEqual([0, 7, 8, 19]);
    expect(() => s.add(24)).toThrow(RangeError);
  });
});
