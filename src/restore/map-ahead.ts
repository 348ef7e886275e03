/**
 * Bounded read-ahead for storage calls, so the next objects download while the database works.
 * Runs `fn` over `items` with up to `depth` calls in flight, yielding results in order. A failed
 * call is yielded as its error, never thrown here: the consumer decides per item.
 */
export async function* mapAhead<T, R>(items: readonly T[], depth: number, fn: (item: T) => Promise<R>): AsyncGenerator<{ item: T; result?: R; error?: unknown }> {
  const settle = (item: T) =>
    fn(item).then(
      (result) => ({ item, result }),
      (error: unknown) => ({ item, error }),
    );
  const queue = items.slice(0, depth).map(settle);
  for (let next = depth; queue.length > 0; next++) {
    const head = await queue.shift()!;
    if (next < items.length) queue.push(settle(items[next]!));
    yield head;
  }
}
