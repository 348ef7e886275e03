/**
 * Keys archived more than once: a row restored into the live table, changed (or not) and archived
 * again by a later run is in the archive twice, and only the version archived last may be
 * restored. Which lines are superseded is decided here, over every selected object (also those
 * the restore watermark skips, so a resumed restore decides as the first one did), before any
 * batch is formed. Deciding it per batch (restore-sql.ts latestPerKey) made the result depend on
 * --batch-size: the older version won, or `fail` stopped on a key the archive itself holds twice
 * (found by probing).
 *
 * "Archived last": a key is archived again only after the transaction deleting its earlier version
 * committed and the application inserted it again. Within one run the batches' delete transactions
 * (`delete_txid`, assigned in that order) say which came last; object keys do not (a run's second
 * pass, behind the watermark, archives into earlier days than its main pass; batches starting at
 * the same instant are named by a hash). Across runs, the sidecars' `created_at` (written inside
 * the delete transaction, right before its DELETE): runs of one table may overlap in time (a cron
 * run of every table and a manual `--table` run: only the table lock keeps them apart), so the run
 * that started later may have archived the older version, and transaction ids are not compared
 * across runs (a cluster moved by dump and restore starts them lower). Found in review; what is
 * left: two archiver hosts whose clocks differ by more than the time between the two deletes.
 * Only objects whose key ranges overlap can share a
 * key. For single integer keys that is normally none; for other keys (text, uuid, composite) every
 * object of the restore, whose sidecars are then read once more (and a third time for the few
 * holding a key seen twice).
 *
 * Bounded memory (DESIGN.md §7), whatever the number of keys: holding every key of those objects
 * (its JSON text, object and line in a Map) took 586 MB of heap at 3 million keys and ran out of
 * the 1 GiB heap at 10 million (docs/benchmarks.md, Restore). Instead:
 * 1. their sidecars are read once more and each key hashed (key-hashes.ts: 8 bytes a key, at most
 *    KEYS_PER_PASS keys at a time; more keys are split by hash over several passes, each reading
 *    the sidecars again);
 * 2. hashes seen twice are the only keys that may be superseded; only the sidecars holding one are
 *    read again, and their keys with such a hash compared exactly (as text), at most
 *    KEYS_PER_SLICE such hashes at a time. A hash collision costs that comparison, never a row.
 * The result holds one bit per row of each object with a superseded line (line-set.ts).
 *
 * Objects archived under different primary-key definitions (key-definitions.ts): a key
 * supersedes only under its own definition, and first, in passes of their own over the sidecars,
 * each key met under two definitions (on the columns they share) is handed to
 * `onCrossDefinition`, which refuses the restore where loading both versions could keep the
 * older one — before anything is loaded.
 */
import { metadataKeyFor } from '../core/archive-layout.js';
import { isTxidText, sha256Hex } from '../core/batch-metadata.js';
import type { ObjectStore } from '../storage/object-store.js';
import { parseObjectMetadata } from './check-object.js';
import { duplicateHashes, hashKeyText, HashList, indexOfHash, type KeyHash } from './key-hashes.js';
import { LineSet } from './line-set.js';
import { mapAhead } from './map-ahead.js';
import type { Candidate } from './restore-options.js';
import { keyDefinitions, type CrossDefinitionKey, type KeyColumnMap, type KeyDefinitions } from './key-definitions.js';

/** Keys hashed per pass: 32 MB of hashes, and as much again while a copy of them is sorted. */
export const KEYS_PER_PASS = 4_000_000;
/** Duplicate hashes whose keys are compared at once: their texts in a Map, ~150 bytes each (~40 MB). */
export const KEYS_PER_SLICE = 250_000;
/** Sidecars fetched ahead while the previous one is parsed and hashed. */
const PREFETCH_SIDECARS = 4;

const INTEGER_KEY_TYPES = new Set(['smallint', 'integer', 'bigint']);

type Ordered = { key: string; meta: Pick<Candidate['meta'], 'run_id' | 'delete_txid' | 'created_at'> };

/**
 * Pure: the order in which a later version supersedes an earlier one (the module's comment): within
 * a run by delete transaction (else creation time), across runs by the sidecars' creation time;
 * then run id and object key, so the order is total. One run's sidecars all come from one version
 * of the tool, so either all have `delete_txid` or none do.
 */
export function archiveOrder<T extends Ordered>(objects: readonly T[]): T[] {
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  const txid = (m: T['meta']): bigint | undefined => (isTxidText(m.delete_txid) ? BigInt(m.delete_txid) : undefined);
  const withinRun = (a: T['meta'], b: T['meta']): number => {
    const x = txid(a);
    const y = txid(b);
    if (x !== undefined && y !== undefined) return x < y ? -1 : x > y ? 1 : 0;
    return cmp(a.created_at ?? '', b.created_at ?? '');
  };
  const order = (a: T, b: T): number =>
    (a.meta.run_id === b.meta.run_id ? withinRun(a.meta, b.meta) : cmp(a.meta.created_at ?? '', b.meta.created_at ?? '')) || cmp(a.meta.run_id, b.meta.run_id) || cmp(a.key, b.key);
  return [...objects].sort(order);
}

/**
 * Pure: objects grouped by run, the runs in the order they archived — by their earliest sidecar's
 * creation time (two runs of one table never overlap: the table lock), then run id — and within a
 * run the given (listing) order. Found flaky in CI: run ids give their start only to the second,
 * so two runs in one second, sorted by id alone, came in either order, and the older version of a
 * row archived under two primary keys would have loaded last (key-definitions.ts refused it).
 */
export function runsOldestFirst<T extends Ordered>(objects: readonly T[]): T[] {
  const first = new Map<string, string>();
  for (const o of objects) {
    const at = o.meta.created_at ?? '';
    const seen = first.get(o.meta.run_id);
    if (seen === undefined || at < seen) first.set(o.meta.run_id, at);
  }
  const cmp = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);
  return [...objects].sort((a, b) => cmp(first.get(a.meta.run_id)!, first.get(b.meta.run_id)!) || cmp(a.meta.run_id, b.meta.run_id));
}

/**
 * Pure: the objects that may hold a key another object also holds. One run is no exception: the
 * application may delete a key the run archived and insert it again, dated where the run has not
 * reached yet, and the run archives it a second time (deciding only across runs restored the
 * first version, or stopped `fail` on the second). Objects overlap when their [min, max] key
 * ranges do; ranges are compared only for a single integer key (as numbers), otherwise every
 * object may share keys.
 */
export function objectsThatMayShareKeys(objects: readonly Pick<Candidate, 'key' | 'meta'>[]): Set<string> {
  if (objects.length < 2) return new Set();
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

export interface SupersededTuning {
  hash?: KeyHash;
  keysPerPass?: number;
  keysPerSlice?: number;
}

type Id = { database: string; schema: string; table: string };

/**
 * The superseded lines of each object to load: lines whose key a later object (in archiveOrder)
 * holds again. `all` is every selected object (loaded or skipped through the watermark). A sidecar
 * that is not the one selected any more (rewritten meanwhile) supersedes nothing: its object is
 * reported when it is loaded, and the older versions load. `tuning` is for tests.
 */
export interface KeyVersions {
  /** The table's column_map (as it holds for each object): key columns are compared by their target names. */
  columnMap?: KeyColumnMap;
  /** Called in archive order for each key met under two definitions (once per later object holding it); throws to refuse the restore. */
  onCrossDefinition?: (found: CrossDefinitionKey, defs: KeyDefinitions) => void;
}

export async function loadSupersededLines(
  store: ObjectStore,
  all: readonly Candidate[],
  toLoad: ReadonlySet<string>,
  id: Id,
  tuning: SupersededTuning = {},
  versions: KeyVersions = {},
): Promise<Map<string, LineSet>> {
  const { hash = hashKeyText, keysPerPass = KEYS_PER_PASS, keysPerSlice = KEYS_PER_SLICE } = tuning;
  const defs = keyDefinitions(all, versions.columnMap);
  if (defs.mixed && defs.common.length > 0 && versions.onCrossDefinition !== undefined) {
    await findCrossDefinitionKeys(store, all, id, defs, { hash, keysPerPass, keysPerSlice }, versions.onCrossDefinition);
  }
  const shared = objectsThatMayShareKeys(all);
  const superseded = new Map<string, LineSet>();
  if (shared.size === 0) return superseded;
  const ordered = archiveOrder(all.filter((x) => shared.has(x.key)));
  const keys = ordered.reduce((n, o) => n + o.meta.record_count, 0);
  const passes = Math.max(1, Math.ceil(keys / keysPerPass));
  for (let pass = 0; pass < passes; pass++) {
    const { duplicates, slicesOf } = await hashPass(store, ordered, id, defs, hash, (h) => h % passes === pass, Math.ceil(keys / passes), keysPerSlice);
    for (let slice = 0; slice * keysPerSlice < duplicates.length; slice++) {
      const holding = ordered.filter((_, i) => slicesOf.get(i)?.has(slice) === true);
      const inSlice = (h: number): boolean => Math.floor(indexOfHash(duplicates, h) / keysPerSlice) === slice;
      await compareKeys(store, holding, id, defs, hash, inSlice, toLoad, superseded);
    }
  }
  return superseded;
}

/**
 * Keys met under two definitions, on the columns the definitions share: each handed to `onCross`
 * in archive order (earlier, later). Bounded as the superseded check is: per pass, each
 * definition's distinct projected hashes (8 bytes a key); hashes found under two definitions are
 * the only candidates, compared exactly as text slice by slice, holding per candidate key only the
 * last object under each definition — never every key sharing a projection (a projection onto
 * few columns can be shared by many keys of one definition).
 */
async function findCrossDefinitionKeys(
  store: ObjectStore,
  all: readonly Candidate[],
  id: Id,
  defs: KeyDefinitions,
  tuning: Required<SupersededTuning>,
  onCross: (found: CrossDefinitionKey, defs: KeyDefinitions) => void,
): Promise<void> {
  const { hash, keysPerPass, keysPerSlice } = tuning;
  const ordered = archiveOrder(all);
  const keys = ordered.reduce((n, o) => n + o.meta.record_count, 0);
  const passes = Math.max(1, Math.ceil(keys / keysPerPass));
  for (let pass = 0; pass < passes; pass++) {
    const byDefinition = new Map<string, HashList>();
    for await (const { object, keys: manifest } of manifests(store, ordered, id)) {
      const d = defs.definition(object.meta);
      let list = byDefinition.get(d);
      if (list === undefined) byDefinition.set(d, (list = new HashList()));
      for (const k of manifest ?? []) {
        const h = hash(defs.projection(object.meta, k));
        if (h % passes === pass) list.push(h);
      }
    }
    // Distinct per definition, then seen twice across them: under two definitions.
    const distinct = [...byDefinition.values()].map((l) => uniqueHashes(l.view()));
    const joined = new Float64Array(distinct.reduce((n, u) => n + u.length, 0));
    distinct.reduce((at, u) => (joined.set(u, at), at + u.length), 0);
    const candidates = duplicateHashes(joined);
    for (let slice = 0; slice * keysPerSlice < candidates.length; slice++) {
      const inSlice = (h: number): boolean => Math.floor(indexOfHash(candidates, h) / keysPerSlice) === slice;
      // Per candidate key on the common columns, the last object holding it under each definition.
      const last = new Map<string, Map<string, Candidate>>();
      for await (const { object, keys: manifest } of manifests(store, ordered, id)) {
        const d = defs.definition(object.meta);
        for (const k of manifest ?? []) {
          const projected = defs.projection(object.meta, k);
          if (!inSlice(hash(projected))) continue;
          let under = last.get(projected);
          if (under === undefined) last.set(projected, (under = new Map()));
          for (const [other, earlier] of under) {
            if (other !== d && earlier !== object) onCross({ earlier, later: object, columns: defs.common, values: JSON.parse(projected) as string[] }, defs);
          }
          under.set(d, object);
        }
      }
    }
  }
}

function uniqueHashes(hashes: Float64Array): Float64Array {
  const sorted = Float64Array.from(hashes).sort();
  let n = 0;
  for (let i = 0; i < sorted.length; i++) if (i === 0 || sorted[i] !== sorted[i - 1]) sorted[n++] = sorted[i]!;
  return sorted.subarray(0, n);
}

/**
 * Step 1, for the keys whose hash `inPass` takes: the hashes seen more than once (sorted), and for
 * each object (by its index in `ordered`) the slices of those it holds a hash of.
 */
async function hashPass(
  store: ObjectStore,
  ordered: readonly Candidate[],
  id: Id,
  defs: KeyDefinitions,
  hash: KeyHash,
  inPass: (h: number) => boolean,
  expected: number,
  keysPerSlice: number,
): Promise<{ duplicates: Float64Array; slicesOf: Map<number, Set<number>> }> {
  const hashes = new HashList(Math.ceil(expected * 1.05));
  const ends: number[] = [];
  for await (const { object, keys } of manifests(store, ordered, id)) {
    for (const k of keys ?? []) {
      const h = hash(defs.identity(object.meta, k));
      if (inPass(h)) hashes.push(h);
    }
    ends.push(hashes.length);
  }
  const all = hashes.view();
  const duplicates = duplicateHashes(all);
  const slicesOf = new Map<number, Set<number>>();
  if (duplicates.length === 0) return { duplicates, slicesOf };
  let from = 0;
  ends.forEach((to, i) => {
    for (let j = from; j < to; j++) {
      const at = indexOfHash(duplicates, all[j]!);
      if (at < 0) continue;
      let slices = slicesOf.get(i);
      if (slices === undefined) slicesOf.set(i, (slices = new Set()));
      slices.add(Math.floor(at / keysPerSlice));
    }
    from = to;
  });
  return { duplicates, slicesOf };
}

/**
 * Step 2: exact comparison, in archive order, of the keys whose hash `inSlice` takes, over the
 * objects holding one. An earlier version is superseded by any later object that holds its key
 * (loaded or not); only objects to load get lines in `superseded`.
 */
async function compareKeys(
  store: ObjectStore,
  holding: readonly Candidate[],
  id: Id,
  defs: KeyDefinitions,
  hash: KeyHash,
  inSlice: (h: number) => boolean,
  toLoad: ReadonlySet<string>,
  superseded: Map<string, LineSet>,
): Promise<void> {
  // Per key, the lines holding its latest version so far: more than one when an object was copied.
  const seen = new Map<string, { xmin: string | undefined; lines: { object: Candidate; line: number }[] }>();
  for await (const { object, keys, xmins } of manifests(store, holding, id)) {
    keys?.forEach((k, line) => {
      const text = defs.identity(object.meta, k);
      if (!inSlice(hash(text))) return;
      const earlier = seen.get(text);
      const xmin = xmins?.[line];
      // The same row version (key and xmin) twice is a copy (an object copied under another name),
      // not a later version: both load, and load-batch.ts reports the copy. Counting it superseded
      // let the copy load alone and the restore succeed (found in review). A later version
      // supersedes every copy of the earlier one, or a copy would load beside it.
      if (earlier !== undefined && xmin !== undefined && earlier.xmin === xmin) {
        earlier.lines.push({ object, line });
        return;
      }
      for (const e of earlier?.lines ?? []) {
        if (!toLoad.has(e.object.key)) continue;
        let lines = superseded.get(e.object.key);
        if (lines === undefined) superseded.set(e.object.key, (lines = new LineSet(e.object.meta.record_count)));
        lines.add(e.line);
      }
      seen.set(text, { xmin, lines: [{ object, line }] });
    });
  }
}

/**
 * Each object's deletion manifest, in the order given, read a few ahead: `keys` is undefined when
 * the sidecar is gone or is not the one selected (rewritten meanwhile: it supersedes nothing).
 * A sidecar that cannot be read or parsed fails the restore, as it would at load.
 */
async function* manifests(store: ObjectStore, objects: readonly Candidate[], id: Id): AsyncGenerator<{ object: Candidate; keys: string[][] | undefined; xmins: readonly string[] | undefined }> {
  const read = mapAhead(objects, PREFETCH_SIDECARS, async (o) => {
    const body = await store.get(metadataKeyFor(o.key));
    if (body === undefined || sha256Hex(body) !== o.meta.sidecar_sha256) return undefined;
    const meta = parseObjectMetadata(o.key, body, id);
    return { keys: meta.primary_keys, xmins: Array.isArray(meta.xmins) ? meta.xmins : undefined };
  });
  for await (const { item, result, error } of read) {
    if (error !== undefined) throw error;
    yield { object: item, keys: result?.keys, xmins: result?.xmins };
  }
}
