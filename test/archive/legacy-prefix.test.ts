/**
 * A table whose schema name holds a dot got a new directory when schema dots were escaped; what
 * earlier versions wrote for it stays under the old one, which may also be another table's
 * (schema `a` table `b.c` for schema `a.b` table `c`). The run warns only about this table's own
 * objects there: a sidecar naming it, or a pending marker not naming another table.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dataKey, legacyTablePrefix, metadataKeyFor, pendingMarkerKey, tablePrefix } from '../../src/core/archive-layout.js';
import { warnLegacyPrefix } from '../../src/archive/legacy-prefix.js';
import { serializeMarker } from '../../src/archive/pending-marker.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import type { TablePlan } from '../../src/core/table-plan.js';

let dir: string;
let store: LocalObjectStore;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'legacy-prefix-'));
  store = new LocalObjectStore({ path: dir });
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function warnings(schema: string, table: string): Promise<Array<{ msg: string; example?: string }>> {
  const lines: Array<{ msg: string; example?: string; level: number }> = [];
  const logger = pino({ level: 'warn' }, { write: (l: string) => lines.push(JSON.parse(l) as { msg: string; example?: string; level: number }) });
  const plan = { database: 'app', schema, table } as TablePlan;
  await warnLegacyPrefix({ store, plan, logger, prefix: tablePrefix('app', schema, table) });
  return lines;
}

const sidecar = (schema: string, table: string): Buffer => Buffer.from(JSON.stringify({ database: 'app', schema, table, record_count: 1 }));

describe('the warning about archives under the directory earlier versions used', () => {
  it("names this table's own object there, and says nothing for another table's", async () => {
    const old = legacyTablePrefix('app', 'a.b', 'c')!;
    expect(old).toBe('app/a.b.c/');
    // Schema a, table b.c: its directory is still app/a.b.c/, and its objects are not ours.
    const theirs = dataKey(old, '2024-01-01', 'x1');
    await store.put(theirs, Buffer.from('{}\n'));
    await store.put(metadataKeyFor(theirs), sidecar('a', 'b.c'));
    expect(await warnings('a.b', 'c')).toEqual([]);

    const ours = dataKey(old, '2024-01-02', 'x2');
    await store.put(ours, Buffer.from('{}\n'));
    await store.put(metadataKeyFor(ours), sidecar('a.b', 'c'));
    const found = await warnings('a.b', 'c');
    expect(found).toHaveLength(1);
    expect(found[0]!.example).toBe(ours);
    expect(found[0]!.msg).toContain('app/a%2Eb.c/');
  });

  it('names a pending marker there that names no other table (markers of earlier versions carry none)', async () => {
    const old = legacyTablePrefix('app', 'a.b', 'c')!;
    const other = pendingMarkerKey(old, '2024-01-01', 'y1');
    await store.put(other, serializeMarker({ data_object: 'k', metadata_object: 'm', run_id: 'r', created_at: '2024-01-01T00:00:00Z', delete_txid: null, table: { database: 'app', schema: 'a', table: 'b.c' } }));
    expect(await warnings('a.b', 'c')).toEqual([]);
    const unnamed = pendingMarkerKey(old, '2024-01-01', 'y2');
    await store.put(unnamed, serializeMarker({ data_object: 'k', metadata_object: 'm', run_id: 'r', created_at: '2024-01-01T00:00:00Z', delete_txid: null }));
    expect((await warnings('a.b', 'c')).map((w) => w.example)).toEqual([unnamed]);
  });

  it('looks nowhere for a schema without a dot: its directory never moved', async () => {
    expect(legacyTablePrefix('app', 'public', 'b.c')).toBeUndefined();
    const key = dataKey(tablePrefix('app', 'public', 'b.c'), '2024-01-01', 'z');
    await store.put(metadataKeyFor(key), sidecar('public', 'b.c'));
    expect(await warnings('public', 'b.c')).toEqual([]);
  });
});
