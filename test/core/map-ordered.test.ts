import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { mapOrdered } from '../../src/core/map-ordered.js';

async function* numbers(n: number): AsyncGenerator<number> {
  for (let i = 0; i < n; i++) yield i;
}

async function collect<T>(source: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of source) out.push(x);
  return out;
}

describe('mapOrdered', () => {
  it('yields in source order whatever order calls finish in, with at most `limit` in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const out = await collect(
      mapOrdered(numbers(200), 7, async (i) => {
        most = Math.max(most, ++inFlight);
        await sleep((i * 37) % 5);
        inFlight--;
        return i * 2;
      }),
    );
    expect(out).toEqual(Array.from({ length: 200 }, (_, i) => i * 2));
    expect(most).toBe(7);
  });

  it('does not read the source further ahead than the window', async () => {
    let pulled = 0;
    async function* counted(): AsyncGenerator<number> {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield i;
      }
    }
    const it = mapOrdered(counted(), 4, async (i) => i)[Symbol.asyncIterator]();
    await it.next();
    expect(pulled).toBeLessThanOrEqual(5);
    await it.return?.(undefined);
  });

  it('throws a failure at its place in the sequence, after the results before it', async () => {
    const seen: number[] = [];
    await expect(
      (async () => {
        for await (const x of mapOrdered(numbers(50), 5, async (i) => {
          if (i === 20) throw new Error('boom at 20');
          await sleep(1);
          return i;
        }))
          seen.push(x);
      })(),
    ).rejects.toThrow('boom at 20');
    expect(seen).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });
});
