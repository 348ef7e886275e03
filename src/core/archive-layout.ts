/**
 * Object keys of the archive (DESIGN.md §3), relative to the store root:
 *   <database>/<schema>.<table>/year=YYYY/month=MM/day=DD/<object>.jsonl.gz  (+ .metadata.json)
 * (`.jsonl.zst` for zstd objects) and the tool's own state under `_auditlog/` (Hive readers skip
 * names starting with `_`).
 */
import { COMPRESSIONS, COMPRESSION_SPECS, compressionOfDataKey, type Compression } from './compression.js';

export const METADATA_SUFFIX = '.metadata.json';
export const STATE_PREFIX = '_auditlog/';

/**
 * A name as one path segment: letters, digits, `_`, `-` and `.` stay; every other byte is %XX
 * (UTF-8), so a table called `a/b` or `weird "name";` cannot leave its directory or collide.
 */
export function encodeKeySegment(name: string): string {
  let out = '';
  for (const byte of Buffer.from(name, 'utf8')) {
    const ch = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.-]/.test(ch) ? ch : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out === '.' || out === '..' ? out.replace(/\./g, '%2E') : out;
}

/**
 * A schema name in `<schema>.<table>`: as {@link encodeKeySegment}, and `.` is `%2E` too, so the first
 * literal `.` of the segment is always the separator. Without it, schema `a.b` with table `c` and
 * schema `a` with table `b.c` shared `a.b.c/` — and so their pending markers, state and locks: one
 * table's reconciliation removed the other's in-flight object, whose rows were then deleted (found
 * by probing). Only the schema is escaped: table names with dots keep the layout they always had.
 */
export function encodeSchemaSegment(schema: string): string {
  return encodeKeySegment(schema).replace(/\./g, '%2E');
}

/** `<database>/<schema>.<table>/`: one table's directory; different tables never share one. */
export function tablePrefix(database: string, schema: string, table: string): string {
  return `${encodeKeySegment(database)}/${encodeSchemaSegment(schema)}.${encodeKeySegment(table)}/`;
}

/**
 * Where versions before the schema escape wrote this table (`.` of the schema kept), when that
 * differs from {@link tablePrefix}: only for schemas with a dot. That directory may also hold the
 * objects of another table (schema `a` table `b.c` for schema `a.b` table `c`), so nothing is ever
 * read from or decided on there; it is only named in a warning (docs/operations.md says how to move it).
 */
export function legacyTablePrefix(database: string, schema: string, table: string): string | undefined {
  const old = `${encodeKeySegment(database)}/${encodeKeySegment(schema)}.${encodeKeySegment(table)}/`;
  return old === tablePrefix(database, schema, table) ? undefined : old;
}

/** `day` is YYYY-MM-DD (UTC), or 0000-00-00 for rows without a calendar day of their own. */
export function dayPartition(day: string): string {
  const [y, m, d] = day.split('-');
  return `year=${y}/month=${m}/day=${d}/`;
}

/** `compression`: gzip by default, the names every version before zstd wrote. */
export function dataKey(prefix: string, day: string, objectName: string, compression: Compression = 'gzip'): string {
  return `${prefix}${dayPartition(day)}${objectName}${COMPRESSION_SPECS[compression].dataSuffix}`;
}

/** Whether `key` names a data object (of any codec). */
export function isDataKey(key: string): boolean {
  return compressionOfDataKey(key) !== undefined;
}

/** The key without its data suffix: what a data object shares with its sidecar (and with the other codecs' objects of that batch). */
export function dataKeyBase(key: string): string {
  const compression = compressionOfDataKey(key);
  if (compression === undefined) throw new Error(`not a data object key: ${key}`);
  return key.slice(0, -COMPRESSION_SPECS[compression].dataSuffix.length);
}

/**
 * The sidecar is `<object>.metadata.json` whatever the codec (DESIGN.md §3): a gzip and a zstd
 * object of the same batch name would share it, which is why a batch never writes where the other
 * codec's object of its name exists (archive-batch.ts) and a sidecar is only taken for the object
 * its `data_object` names.
 */
export function metadataKeyFor(key: string): string {
  return dataKeyBase(key) + METADATA_SUFFIX;
}

/** The keys every codec would give this batch's data object (the batch's own first). */
export function dataKeysOfName(key: string): string[] {
  const base = dataKeyBase(key);
  return [key, ...COMPRESSIONS.map((c) => base + COMPRESSION_SPECS[c].dataSuffix).filter((k) => k !== key)];
}

export function pendingPrefix(prefix: string): string {
  return `${STATE_PREFIX}pending/${prefix}`;
}

/**
 * The in-flight marker of a batch: present from before its upload until its delete committed. Its
 * name says the codec (compression.ts, markerSuffix), so that the data object it stands for
 * follows from the name alone, whatever the configuration of the run that reconciles it.
 */
export function pendingMarkerKey(prefix: string, day: string, objectName: string, compression: Compression = 'gzip'): string {
  return `${pendingPrefix(prefix)}${day}-${objectName}${COMPRESSION_SPECS[compression].markerSuffix}`;
}

/**
 * The data object a pending marker stands for, from the marker's key alone: reconciliation must
 * not depend on the marker's content, which a crash may have left unreadable.
 */
export function dataKeyForMarker(prefix: string, markerKey: string): string | undefined {
  const name = markerKey.startsWith(pendingPrefix(prefix)) ? markerKey.slice(pendingPrefix(prefix).length) : '';
  for (const compression of COMPRESSIONS) {
    const suffix = COMPRESSION_SPECS[compression].markerSuffix;
    if (!name.endsWith(suffix)) continue;
    const m = /^(\d{4}-\d{2}-\d{2})-([^/]+)$/.exec(name.slice(0, -suffix.length));
    // `.zst.pending` does not end in `.json`, so at most one codec's suffix matches a name.
    if (m !== null) return dataKey(prefix, m[1]!, m[2]!, compression);
  }
  return undefined;
}

/** The pending marker a data object of this table has while its batch is in flight (dataKeyForMarker's inverse). */
export function markerKeyForData(prefix: string, key: string): string | undefined {
  const compression = compressionOfDataKey(key);
  if (compression === undefined || !key.startsWith(prefix)) return undefined;
  const rest = key.slice(prefix.length, -COMPRESSION_SPECS[compression].dataSuffix.length);
  const m = /^year=(\d{4})\/month=(\d{2})\/day=(\d{2})\/([^/]+)$/.exec(rest);
  return m === null ? undefined : pendingMarkerKey(prefix, `${m[1]}-${m[2]}-${m[3]}`, m[4]!, compression);
}

/** `<database>/<schema>.<table>` as one name: the file name of a table's state documents. */
function tableStateName(id: { database: string; schema: string; table: string }): string {
  return tablePrefix(id.database, id.schema, id.table).slice(0, -1);
}

/** The table's watermark and last-run result (watermarks.backend: storage). */
export function tableStateKey(id: { database: string; schema: string; table: string }): string {
  return `${STATE_PREFIX}state/${tableStateName(id)}.json`;
}

/** The checkpoint of a run in progress or interrupted; relative to the store or the checkpoint directory. */
export function checkpointKey(id: { database: string; schema: string; table: string }): string {
  return `${STATE_PREFIX}checkpoints/${tableStateName(id)}.json`;
}

/** The lock file of a table in local mode, relative to the archive directory. */
export function lockFileKey(id: { database: string; schema: string; table: string }): string {
  return `${STATE_PREFIX}locks/${tableStateName(id)}.lock`;
}
