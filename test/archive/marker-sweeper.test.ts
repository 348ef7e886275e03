/**
 * When the sweeper removes committed batches' pending markers: in bulk at 50 keys or once the
 * oldest has waited ~2 s (checked as keys arrive, no timer), everything left at flush(), one sweep
 * at a time, and never a failure for the caller. The stores here are scripted; the archive runs in
 * archive-pipeline.test.ts and test/resilience prove the same against s3rver and a directory.
 */
import { describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { MarkerSweeper, MARKER_SWEEP_MAX_AGE_MS, MARKER_SWEEP_MAX_KEYS, type SweptBatch } from '../../src/archive/marker-sweeper.js';
import type { DeleteManyResult } from '../../src/storage/object-store.js';

interface Warning {
  fields: Record<string, unknown>;
  message: string;
}

function setup(answer: (keys: readonly string[]) => Promise<DeleteManyResult> = async () => ({ failed: [] })) {
  let t = 0;
  const calls: string[][] = [];
  const warnings: Warning[] = [];
  const store = {
    deleteMany: (keys: readonly string[]) => {
      calls.push([...keys]);
      return answer(keys);
    },
  };
  const logger = {
    warn: (fields: Record<string, unknown>, message: string) => void warnings.push({ fields, message }),
    debug: () => undefined,
  };
  const sweeper = new MarkerSweeper({ store, logger: logger as never, now: () => t });
  return { sweeper, calls, warnings, advance: (ms: number) => void (t += ms) };
}

/** A sweep starts after the one before it has settled: a turn of the event loop later. */
const settle = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The committed batch a marker stands for (what the audit trail is asked to record). */
const batchOf = (markerKey: string): SweptBatch => ({ key: markerKey.replace('_auditlog/pending/', 'app/').replace(/\.json$/, '.jsonl.gz'), rows: 8, bytesCompressed: 100 });

const keys = (n: number, from = 0): string[] => Array.from({ length: n }, (_, i) => `_auditlog/pending/m${from + i}.json`);

describe('MarkerSweeper', () => {
  it('sweeps once 50 markers are queued, in one request, and the rest at flush()', async () => {
    const s = setup();
    for (const key of keys(MARKER_SWEEP_MAX_KEYS - 1)) s.sweeper.add(key, batchOf(key));
    expect(s.calls).toEqual([]);
    s.sweeper.add('_auditlog/pending/m49.json', batchOf('_auditlog/pending/m49.json'));
    await settle();
    expect(s.calls).toEqual([keys(50)]);
    for (const key of keys(3, 50)) s.sweeper.add(key, batchOf(key));
    await s.sweeper.flush();
    expect(s.calls).toEqual([keys(50), keys(3, 50)]);
    await s.sweeper.flush();
    expect(s.calls).toHaveLength(2);
  });

  it('sweeps when a marker arrives and the oldest queued one has waited ~2 s; no timer fires on its own', async () => {
    const s = setup();
    s.sweeper.add('a', batchOf('a'));
    s.advance(MARKER_SWEEP_MAX_AGE_MS - 1);
    s.sweeper.add('b', batchOf('b'));
    expect(s.calls).toEqual([]);
    s.advance(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(s.calls).toEqual([]);
    s.sweeper.add('c', batchOf('c'));
    await settle();
    expect(s.calls).toEqual([['a', 'b', 'c']]);
    // The age counts from the oldest marker still queued, not from the first ever.
    s.sweeper.add('d', batchOf('d'));
    s.advance(MARKER_SWEEP_MAX_AGE_MS - 1);
    s.sweeper.add('e', batchOf('e'));
    await settle();
    expect(s.calls).toHaveLength(1);
    await s.sweeper.flush();
    expect(s.calls).toEqual([['a', 'b', 'c'], ['d', 'e']]);
  });

  it('runs one sweep at a time, and flush() waits for the one in flight', async () => {
    const releases: Array<() => void> = [];
    const s = setup(() => new Promise((resolve) => releases.push(() => resolve({ failed: [] }))));
    for (const key of keys(50)) s.sweeper.add(key, batchOf(key));
    s.sweeper.add('late', batchOf('late'));
    let flushed = false;
    const flushing = s.sweeper.flush().then(() => void (flushed = true));
    await new Promise((resolve) => setTimeout(resolve, 10));
    // The second sweep waits for the first.
    expect(s.calls).toHaveLength(1);
    releases.shift()!();
    await new Promise((resolve) => setTimeout(resolve, 10));
    expect(s.calls).toEqual([keys(50), ['late']]);
    expect(flushed).toBe(false);
    releases.shift()!();
    await flushing;
    expect(flushed).toBe(true);
  });

  it('logs a failed sweep and keys refused one by one as warnings, never throws, and goes on sweeping', async () => {
    let n = 0;
    const s = setup(async (batch) => {
      n += 1;
      if (n === 1) throw new AuditlogError('STORAGE_UNREACHABLE', 'S3 delete-many s3://b/p/ failed after 3 attempts (HTTP 503)');
      return { failed: [{ key: batch[0]!, reason: 'AccessDenied: Access Denied' }] };
    });
    s.sweeper.add('a', batchOf('a'));
    await expect(s.sweeper.flush()).resolves.toBeUndefined();
    s.sweeper.add('b', batchOf('b'));
    s.sweeper.add('c', batchOf('c'));
    await expect(s.sweeper.flush()).resolves.toBeUndefined();
    expect(s.calls).toEqual([['a'], ['b', 'c']]);
    expect(s.warnings.map((w) => w.message)).toEqual([
      'batches committed, but their pending markers could not be removed; the next run clears them',
      'batches committed, but some of their pending markers could not be removed; the next run clears them',
    ]);
    expect(s.warnings[0]!.fields).toMatchObject({ markers: 1, examples: ['a'], err: expect.stringContaining('HTTP 503') });
    expect(s.warnings[1]!.fields).toMatchObject({ markers: 2, failed: 1, examples: [{ key: 'b', reason: 'AccessDenied: Access Denied' }] });
  });

  it('runs the crash hook before each sweep request', async () => {
    const order: string[] = [];
    const sweeper = new MarkerSweeper({
      store: {
        deleteMany: async (k) => {
          order.push(`delete ${k.join(',')}`);
          return { failed: [] };
        },
      },
      logger: { warn: () => undefined, debug: () => undefined } as never,
      beforeSweep: () => void order.push('hook'),
    });
    sweeper.add('a', batchOf('a'));
    await sweeper.flush();
    await sweeper.flush();
    expect(order).toEqual(['hook', 'delete a']);
  });

  it('asks beforeRemove with the swept batches after the crash hook, and removes the markers only once it confirms', async () => {
    const order: string[] = [];
    const answers = [true, false];
    const sweeper = new MarkerSweeper({
      store: {
        deleteMany: async (k) => {
          order.push(`delete ${k.join(',')}`);
          return { failed: [] };
        },
      },
      logger: { warn: (_f: unknown, message: string) => void order.push(`warn ${message}`), debug: () => undefined } as never,
      beforeSweep: () => void order.push('hook'),
      beforeRemove: async (batches) => {
        order.push(`record ${batches.map((b) => `${b.key}:${b.rows}`).join(',')}`);
        const answer = answers.shift();
        if (answer === undefined) throw new Error('audit disk full');
        return answer;
      },
    });
    sweeper.add('a', { key: 'a.jsonl.gz', rows: 3, bytesCompressed: 10 });
    sweeper.add('b', { key: 'b.jsonl.gz', rows: 5, bytesCompressed: 20 });
    await sweeper.flush();
    sweeper.add('c', { key: 'c.jsonl.gz', rows: 1, bytesCompressed: 5 });
    await sweeper.flush();
    sweeper.add('d', { key: 'd.jsonl.gz', rows: 2, bytesCompressed: 5 });
    // A hook that throws confirms nothing either; flush() still never throws.
    await expect(sweeper.flush()).resolves.toBeUndefined();
    const kept = 'warn batches committed, but their audit record could not be written: their pending markers are kept, and the next run records them as reconciled';
    expect(order).toEqual(['hook', 'record a.jsonl.gz:3,b.jsonl.gz:5', 'delete a,b', 'hook', 'record c.jsonl.gz:1', kept, 'hook', 'record d.jsonl.gz:2', kept]);
  });
});
