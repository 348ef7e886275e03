/**
 * The storage variant of the restore watermark collects entries in memory and writes its document
 * at most every RECORD_INTERVAL_MS and on flush (restore-watermarks.ts). Two batches (--jobs 2)
 * recording at once, before the document was ever read (--ignore-watermark skips the load), must
 * both land in it: record() reads outside the write queue.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { ObjectRestoreWatermarkStore, restoreStateKey, type RestoredObject } from '../../src/restore/restore-watermarks.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const id = { database: 'app', schema: 'public', table: 'events' };
const target = { schema: 'public', table: 'events' };
const entry = (n: number): RestoredObject => ({ sha256_compressed: String(n).repeat(64).slice(0, 64), rows: n, run_id: 'r', restored_at: '2026-11-30T00:00:00Z' });

describe('ObjectRestoreWatermarkStore', () => {
  it('keeps the entries of two batches recording at once before the document was read, and writes them on flush', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'restore-wm-'));
    dirs.push(dir);
    const local = new LocalObjectStore({ path: dir });
    // Every GET waits, so both first reads are in flight together.
    const slow = Object.create(local) as LocalObjectStore;
    slow.get = async (key: string) => {
      await new Promise((r) => setTimeout(r, 50));
      return local.get(key);
    };
    const wm = new ObjectRestoreWatermarkStore(slow);
    await Promise.all([wm.record(null as never, id, target, new Map([['a', entry(1)]])), wm.record(null as never, id, target, new Map([['b', entry(2)]]))]);
    await wm.record(null as never, id, target, new Map([['c', entry(3)]]));
    await wm.flush();
    const doc = JSON.parse((await local.get(restoreStateKey(id, target)))!.toString('utf8')) as { objects: Record<string, RestoredObject> };
    expect(Object.keys(doc.objects).sort()).toEqual(['a', 'b', 'c']);
    // A fresh store reads what was written.
    expect([...(await new ObjectRestoreWatermarkStore(local).load(id, target)).keys()].sort()).toEqual(['a', 'b', 'c']);
  });
});

describe('a restore-state document that is JSON but not one', () => {
  it.each(['null', '{}', '[]', '{"format":"other","objects":{}}', '{"format":"auditlog-restore-state","objects":[]}'])('%s is refused as unreadable, not read as "nothing restored"', async (text) => {
    const dir = await mkdtemp(path.join(tmpdir(), 'restore-wm-'));
    dirs.push(dir);
    const local = new LocalObjectStore({ path: dir });
    await local.put(restoreStateKey(id, target), Buffer.from(text));
    // Taken as empty, every object was loaded again: twice into a target without a key.
    await expect(new ObjectRestoreWatermarkStore(local).load(id, target)).rejects.toMatchObject({ code: 'STORAGE_IO', message: expect.stringContaining('pass --ignore-watermark') });
    // --ignore-watermark never loads it: the next record starts the document afresh.
    const wm = new ObjectRestoreWatermarkStore(local);
    await wm.record(null as never, id, target, new Map([['a', entry(1)]]));
    await wm.flush();
    expect([...(await new ObjectRestoreWatermarkStore(local).load(id, target)).keys()]).toEqual(['a']);
  });
});
