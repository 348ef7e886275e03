/**
 * mapWithLimit runs the databases of a run, `max_parallel_databases` at once. A failure must not
 * leave the others running unseen: their tables would go on after run:failed had counted them
 * failed in the metrics, and be counted again when they finished (found in review).
 */
import { describe, expect, it } from 'vitest';
import { mapWithLimit } from '../../src/archive/run-archive.js';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('mapWithLimit', () => {
  it('returns the results in order, never more than `limit` at once', async () => {
    let running = 0;
    let peak = 0;
    const out = await mapWithLimit([30, 10, 20, 5], 2, async (ms) => {
      peak = Math.max(peak, ++running);
      await sleep(ms);
      running--;
      return ms * 2;
    });
    expect(out).toEqual([60, 20, 40, 10]);
    expect(peak).toBe(2);
  });

  it('rejects with the first failure only once the work already started elsewhere has ended', async () => {
    const ended: string[] = [];
    const run = mapWithLimit(['fails', 'slow'], 2, async (item) => {
      if (item === 'fails') throw new Error('database a failed');
      await sleep(100);
      ended.push(item);
      return item;
    });
    await expect(run).rejects.toThrow('database a failed');
    expect(ended).toEqual(['slow']);
  });
});
