/**
 * Object keys of the archive (DESIGN.md §3), relative to the store root:
 *   <database>/<schema>.<table>/year=YYYY/month=MM/day=DD/<object>.jsonl.gz  (+ .metadata.json)
 * and the tool's own state under `_auditlog/` (Hive readers skip names starting with `_`).
 */
export const DATA_SUFFIX = '.jsonl.gz';
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

export function dataKey(prefix: string, day: string, objectName: string): string {
  return `${prefix}${dayPartition(day)}${objectName}${DATA_SUFFIX}`;
}

export function metadataKeyFor(key: string): string {
  if (!key.endsWith(DATA_SUFFIX)) throw new Error(`not a data object key: ${key}`);
  return key.slice(0, -DATA_SUFFIX.length) + METADATA_SUFFIX;
}

export function pendingPrefix(prefix: string): string {
  return `${STATE_PREFIX}pending/${prefix}`;
}

/** The in-flight marker of a batch: present from before its upload until its delete committed. */
export function pendingMarkerKey(prefix: string, day: string, objectName: string): string {
  return `${pendingPrefix(prefix)}${day}-${objectName}.json`;
}

/**
 * The data object a pending marker stands for, from the marker's key alone: reconciliation must
 * not depend on the marker's content, which a crash may have left unreadable.
 */
export function dataKeyForMarker(prefix: string, markerKey: string): string | undefined {
  const name = markerKey.startsWith(pendingPrefix(prefix)) ? markerKey.slice(pendingPrefix(prefix).length) : '';
  const m = /^(\d{4}-\d{2}-\d{2})-([^/]+)\.json$/.exec(name);
  return m === null ? undefined : dataKey(prefix, m[1]!, m[2]!);
}

/** The pending marker a data object of this table has while its batch is in flight (dataKeyForMarker's inverse). */
export function markerKeyForData(prefix: string, key: string): string | undefined {
  const rest = key.startsWith(prefix) && key.endsWith(DATA_SUFFIX) ? key.slice(prefix.length, -DATA_SUFFIX.length) : '';
  const m = /^year=(\d{4})\/month=(\d{2})\/day=(\d{2})\/([^/]+)$/.exec(rest);
  return m === null ? undefined : pendingMarkerKey(prefix, `${m[1]}-${m[2]}-${m[3]}`, m[4]!);
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
