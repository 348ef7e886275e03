/**
 * Keys archived more than once: a row restored into the live table, changed (or not) and archived
 * again by a later run is in the archive twice, and only the version archived last may be
 * restored. Which lines are superseded is decided here, over every selected object (also those
 * the restore watermark skips, so a resumed restore decides as the first one did), before any
 * batch is formed. Deciding it per batch (restore-sql.ts latestPerKey) made the result depend on
 * --batch-size: the older version won, or `fail` stopped on a key the archive itself holds twice
 * (found by probing).
 *
 * "Archived last" is the archiving run order: run ids start with their UTC start time, and a key
 * can only be archived again by a later run (the archive lock keeps runs of a table apart); within
 * a run, the object key (day, time of day) decides. Only objects whose key ranges overlap an object
 * of another run can share a key: their sidecars are read once more (one GET each) and their keys
 * held until the load starts. For single integer keys that is normally none; for other keys
 * (text, uuid, composite) every object of a restore that spans several runs.
 */
import { metadataKeyFor } from '../core/archive-layout.js';
import { sha256Hex } from '../core/batch-metadata.js';
import type { ObjectStore } from '../storage/object-store.js';
import { parseObjectMetadata } from './check-object.js';
import type { Candidate } from './restore-options.js';

const INTEGER_KEY_TYPES = new Set(['smallint', 'integer', 'bigint']);

/** Pure: oldest run first, then object key: the order in which a later version supersedes an earlier one. */
export function archiveOrder<T extends Pick<Candidate, 'key' | 'meta'>>(objects: readonly T[]): T[] {
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...objects].sort((a, b) => cmp(a.meta.run_id, b.meta.run_id) || cmp(a.key, b.key));
}

/**
 * Pure: the objects that may hold a key another object also holds, when more than one run is
 * selected. Objects overlap when their [min, max] key ranges do; ranges are compared only for a
 * single integer key (as numbers), otherwise every object may share keys.
 */
export function objectsThatMayShareKeys(objects: readonly Pick<Candidate, 'key' | 'meta'>[]): Set<string> {
  if (new Set(objects.map((o) => o.meta.run_id)).size < 2) return new Set();
  const ranges: { key: string; lo: bigint; hi: bigint }[] = [];
  for (const o of objects) {
    const [column, ...more] = o.meta.primary_key_columns;
    const type = o.meta.columns.find((c) => c.name === column)?.type;
    const lo = integer(o.meta.min_primary_key?.[0]);
    const hi = integer(o.meta.max_primary_key?.[0]);
    if (more.length > 0 || type === undefined || !INTEGER_KEY_TYPES.has(type) || lo === undefined || hi === undefined) return new Set(objects.map((x) => x.key));
    ranges.push({ key: o.key, lo, hi });
  }
  ranges.sort((a, b) => (a.lo < b.lo ? -1 : a.lo > b.lo ? 1 : 0));
  const out = new Set<string>();
  let reach: bigint | undefined;
  ranges.forEach((r, i) => {
    // Overlaps one starting before it (the furthest reach so far), or the next one to start.
    if (reach !== undefined && r.lo <= reach) out.add(r.key);
    const next = ranges[i + 1];
    if (next !== undefined && next.lo <= r.hi) out.add(r.key);
    reach = reach === undefined || r.hi > reach ? r.hi : reach;
  });
  return out;
}

function integer(text: unknown): bigint | undefined {
  if (typeof text !== 'string' || !/^-?\d+$/.test(text)) return undefined;
  return BigInt(text);
}

/**
 * The superseded lines of each object to load: lines whose key a later object (in archiveOrder)
 * holds again. `all` is every selected object (loaded or skipped through the watermark). A sidecar
 * that is not the one selected any more (rewritten meanwhile) supersedes nothing: its object is
 * reported when it is loaded, and the older versions load.
 */
export async function loadSupersededLines(
  store: ObjectStore,
  all: readonly Candidate[],
  toLoad: ReadonlySet<string>,
  id: { database: string; schema: string; table: string },
): Promise<Map<string, Set<number>>> {
  const shared = objectsThatMayShareKeys(all);
  const superseded = new Map<string, Set<number>>();
  if (shared.size === 0) return superseded;
  const seen = new Map<string, { object: string; line: number }>();
  for (const o of archiveOrder(all.filter((x) => shared.has(x.key)))) {
    const body = await store.get(metadataKeyFor(o.key));
    if (body === undefined || sha256Hex(body) !== o.meta.sidecar_sha256) continue;
    const keys = parseObjectMetadata(o.key, body, id).primary_keys;
    keys.forEach((k, line) => {
      const text = JSON.stringify(k);
      const earlier = seen.get(text);
      if (earlier !== undefined && toLoad.has(earlier.object)) {
        let lines = superseded.get(earlier.object);
        if (lines === undefined) superseded.set(earlier.object, (lines = new Set()));
        lines.add(earlier.line);
      }
      seen.set(text, { object: o.key, line });
    });
  }
  return superseded;
}
