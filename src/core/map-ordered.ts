/**
 * Maps an async sequence with at most `limit` calls in flight, yielding results in the order of
 * the source (not of completion). Results wait in a window of at most `limit`, so memory is
 * bounded by `limit` results whatever the length of the source — the point of streaming a long
 * listing instead of collecting it.
 *
 * On a failure the error is thrown at its place in the sequence; calls already started are left to
 * settle on their own (reads: nothing to undo), and their failures are not unhandled rejections.
 */
export async function* mapOrdered<T, R>(source: AsyncIterable<T> | Iterable<T>, limit: number, fn: (item: T) => Promise<R>): AsyncGenerator<R> {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`mapOrdered: limit must be a positive integer, got ${limit}`);
  const window: Promise<R>[] = [];
  for await (const item of source) {
    const result = fn(item);
    result.catch(() => undefined);
    window.push(result);
    if (window.length >= limit) yield await window.shift()!;
  }
  while (window.length > 0) yield await window.shift()!;
}
