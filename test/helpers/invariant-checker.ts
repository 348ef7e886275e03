/**
 * The resilience suite's judge (issue #3): after a scenario and a rerun to completion, it reads the
 * bucket (or directory) and the table directly and checks I1/I2/I4 row by row against the rows as
 * they were before the scenario (plus what the application changed meanwhile):
 *   - every expected row is in the table or in exactly one committed object, with identical content;
 *   - no committed object lists a row still in the table;
 *   - no archived copy differs from the last version of its row (a stale delete).
 * It shares no code path with the archiver on purpose: its own S3 client and file walk, its own
 * gunzip and SHA-256, its own SQL, its own reading of the layout (docs/format.md), so a bug in the
 * archiver's store, encoder or queries cannot hide itself here.
 */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import type { S3Config } from '../../src/config/schema.js';
import type { TestDatabase } from './postgres.js';

export type ArchiveSource = { s3: S3Config } | { local: { path: string } };

export interface TableRef {
  schema?: string;
  table: string;
}

/**
 * What the table should hold in the table-or-archive sense: each row's last version as
 * row_to_json text, by key (the JSON array of the key columns as text, as the manifest writes it).
 * Rows the application deleted during the scenario must be in neither place.
 */
export interface ExpectedRows {
  lines: Map<string, string>;
  deletedByApp: Set<string>;
}

export interface InvariantReport {
  rowsChecked: number;
  rowsInTable: number;
  /** Distinct rows in committed objects. */
  rowsArchived: number;
  rowsLost: number;
  rowsDuplicated: number;
  rowsInTableAndArchive: number;
  /** Archived copies whose content is not the row's last version. */
  staleCopies: number;
  /** Archived rows that never existed in the table. */
  unknownRows: number;
  /**
   * Rows gone from the table whose only copy is a verified object still marked in flight: not lost
   * (I1 holds at that instant), but a rerun must reconcile them. Counted as a problem.
   */
  rowsOnlyInFlight: number;
  committedObjects: number;
  pendingMarkers: number;
  /** Data objects without a metadata sidecar: only legitimate while their batch is in flight. */
  objectsWithoutMetadata: number;
  /** Every violation, one line each (empty when the invariant holds). */
  problems: string[];
  /** Every row of every committed object, for scenario-specific checks (e.g. partition days). */
  archivedRows: { key: string; object: string; line: string }[];
}

const PENDING_PREFIX = '_auditlog/pending/';
const DATA_SUFFIXES = ['.jsonl.gz', '.jsonl.zst'];
const METADATA_SUFFIX = '.metadata.json';
const dataSuffixOf = (key: string): string | undefined => DATA_SUFFIXES.find((s) => key.endsWith(s));

/**
 * zstd through the tool's codec module: the package may be initialised only once per process
 * (codec.ts), and the checker's independence is about which objects count, not about the codec,
 * which test/archive/zstd-compression.test.ts checks against the `zstd` command.
 */
async function decompress(key: string, body: Buffer): Promise<Buffer> {
  if (key.endsWith('.jsonl.gz')) return gunzipSync(body);
  const { decompressBody } = await import('../../src/archive/codec.js');
  return decompressBody('zstd', body);
}

/**
 * The rows as the archiver must write them: row_to_json under the session settings docs/format.md
 * pins (UTC, ISO dates, exact floats), so "identical content" is a plain string comparison.
 */
async function withPinnedSession<T>(db: TestDatabase, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({
    connectionString: db.url,
    options: '-c TimeZone=UTC -c DateStyle=ISO,YMD -c IntervalStyle=postgres -c extra_float_digits=3 -c bytea_output=hex',
    application_name: 'invariant-checker',
  });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

const quote = (name: string): string => `"${name.replace(/"/g, '""')}"`;
const qualified = (t: TableRef): string => `${quote(t.schema ?? 'public')}.${quote(t.table)}`;

async function primaryKeyColumns(client: pg.Client, t: TableRef): Promise<string[]> {
  const r = await client.query<{ name: string }>(
    `SELECT a.attname AS name FROM pg_index i JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, n) ON true
       JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
      WHERE i.indrelid = $1::regclass AND i.indisprimary AND k.n <= i.indnkeyatts ORDER BY k.n`,
    [qualified(t)],
  );
  if (r.rows.length === 0) throw new Error(`${qualified(t)} has no primary key: the checker needs one to match rows`);
  return r.rows.map((x) => x.name);
}

/** Current rows of the table (those matching `where`, an SQL condition on alias t), by key. */
export async function snapshotRows(db: TestDatabase, t: TableRef, where = 'true'): Promise<Map<string, string>> {
  return withPinnedSession(db, async (client) => {
    const pk = await primaryKeyColumns(client, t);
    const r = await client.query<{ k: string; line: string }>(
      `SELECT json_build_array(${pk.map((c) => `t.${quote(c)}::text`).join(', ')})::text AS k, row_to_json(t.*)::text AS line FROM ${qualified(t)} AS t WHERE ${where}`,
    );
    // json_build_array renders `["1"]`; the manifest is parsed JSON re-serialized, so normalize the same way.
    return new Map(r.rows.map((x) => [JSON.stringify(JSON.parse(x.k)), x.line]));
  });
}

/** The whole table as the expectation before a scenario starts. */
export async function expectRowsOf(db: TestDatabase, t: TableRef): Promise<ExpectedRows> {
  return { lines: await snapshotRows(db, t), deletedByApp: new Set() };
}

/** Takes in what the application did meanwhile: the new versions of `changedWhere`, and rows now gone. */
export async function noteApplicationChanges(db: TestDatabase, t: TableRef, expected: ExpectedRows, changedWhere: string, deletedKeys: Iterable<string>): Promise<void> {
  for (const [k, line] of await snapshotRows(db, t, changedWhere)) expected.lines.set(k, line);
  for (const k of deletedKeys) {
    expected.lines.delete(k);
    expected.deletedByApp.add(k);
  }
}

/** Every key under the source's root (the S3 prefix stripped), with a reader for its bytes. */
interface RawArchive {
  keys: string[];
  read(key: string): Promise<Buffer>;
  close(): void;
}

async function openS3(cfg: S3Config): Promise<RawArchive> {
  const client = new S3Client({
    region: cfg.region,
    ...(cfg.endpoint === undefined ? {} : { endpoint: cfg.endpoint }),
    forcePathStyle: cfg.force_path_style,
    credentials: { accessKeyId: cfg.access_key_id ?? '', secretAccessKey: cfg.secret_access_key ?? '' },
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: cfg.bucket, Prefix: cfg.prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) keys.push(o.Key!.slice(cfg.prefix.length));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return {
    keys,
    read: async (key) => {
      const r = await client.send(new GetObjectCommand({ Bucket: cfg.bucket, Key: cfg.prefix + key }));
      return Buffer.from(await r.Body!.transformToByteArray());
    },
    close: () => client.destroy(),
  };
}

async function openLocal(root: string): Promise<RawArchive> {
  const keys: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch((e: NodeJS.ErrnoException) => (e.code === 'ENOENT' ? [] : Promise.reject(e)));
    for (const e of entries) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) await walk(full);
      // Temp files of an interrupted atomic write are not objects.
      else if (!e.name.endsWith('.auditlog-tmp')) keys.push(path.relative(root, full).split(path.sep).join('/'));
    }
  };
  await walk(root);
  return { keys, read: (key) => readFile(path.join(root, key)), close: () => undefined };
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** `<db>/<schema>.<table>/<YYYY-MM-DD>-<name>.json` (gzip) or `….zst.pending` (zstd) under the pending prefix → the data key it stands for. */
function dataKeyOfMarker(marker: string): string | undefined {
  const m = /^(.*\/)(\d{4})-(\d{2})-(\d{2})-([^/]+?)(\.json|\.zst\.pending)$/.exec(marker.slice(PENDING_PREFIX.length));
  return m === null ? undefined : `${m[1]}year=${m[2]}/month=${m[3]}/day=${m[4]}/${m[5]}${m[6] === '.json' ? '.jsonl.gz' : '.jsonl.zst'}`;
}

interface Metadata {
  sha256_compressed: string;
  sha256_uncompressed: string;
  compressed_bytes: number;
  record_count: number;
  primary_keys: string[][];
}

function parseMetadata(body: Buffer): Metadata | undefined {
  try {
    const meta = JSON.parse(body.toString('utf8')) as Metadata;
    return Array.isArray(meta.primary_keys) && typeof meta.sha256_compressed === 'string' ? meta : undefined;
  } catch {
    return undefined;
  }
}

interface ArchivedCopy {
  object: string;
  line: string;
}

/** Rows of every committed object, by key; structural problems (checksums, counts, JSON) go to `problems`. */
async function readArchivedRows(
  raw: RawArchive,
  problems: string[],
): Promise<{ copies: Map<string, ArchivedCopy[]>; inFlight: Map<string, ArchivedCopy[]>; committed: number; pending: number; withoutMetadata: number }> {
  const keys = new Set(raw.keys);
  const markers = raw.keys.filter((k) => k.startsWith(PENDING_PREFIX));
  const inFlight = new Set(markers.map(dataKeyOfMarker));
  for (const m of markers) problems.push(`pending marker left behind: ${m}`);
  const copies = new Map<string, ArchivedCopy[]>();
  const inFlightCopies = new Map<string, ArchivedCopy[]>();
  let committed = 0;
  let withoutMetadata = 0;
  for (const key of raw.keys.filter((k) => dataSuffixOf(k) !== undefined && !k.startsWith('_auditlog/'))) {
    const metaKey = key.slice(0, -dataSuffixOf(key)!.length) + METADATA_SUFFIX;
    if (!keys.has(metaKey)) {
      withoutMetadata++;
      problems.push(`data object without metadata: ${key}`);
      continue;
    }
    const into = inFlight.has(key) ? inFlightCopies : copies;
    if (!inFlight.has(key)) committed++;
    const body = await raw.read(key);
    const meta = parseMetadata(await raw.read(metaKey));
    if (meta === undefined) {
      // Without its manifest an object proves nothing: its rows do not count as archived.
      problems.push(`${metaKey}: unreadable metadata`);
      continue;
    }
    if (body.length !== meta.compressed_bytes || sha256(body) !== meta.sha256_compressed) {
      problems.push(`${key}: stored bytes do not match the metadata (size or SHA-256)`);
      continue;
    }
    const text = await decompress(key, body);
    if (sha256(text) !== meta.sha256_uncompressed) problems.push(`${key}: SHA-256 of the decompressed bytes does not match the metadata`);
    const lines = text.toString('utf8').split('\n');
    if (lines.pop() !== '') problems.push(`${key}: the last line does not end with a newline`);
    if (lines.length !== meta.record_count || lines.length !== meta.primary_keys.length) {
      problems.push(`${key}: ${lines.length} lines, record_count ${meta.record_count}, ${meta.primary_keys.length} manifest keys`);
      continue;
    }
    lines.forEach((line, i) => {
      try {
        JSON.parse(line);
      } catch {
        problems.push(`${key} line ${i}: not JSON`);
      }
      const k = JSON.stringify(meta.primary_keys[i]);
      into.set(k, [...(into.get(k) ?? []), { object: key, line }]);
    });
  }
  return { copies, inFlight: inFlightCopies, committed, pending: markers.length, withoutMetadata };
}

export async function checkArchiveInvariant(options: { db: TestDatabase; table: TableRef; source: ArchiveSource; expected: ExpectedRows }): Promise<InvariantReport> {
  const { db, table, source, expected } = options;
  const problems: string[] = [];
  const inTable = await snapshotRows(db, table);
  const raw = 's3' in source ? await openS3(source.s3) : await openLocal(source.local.path);
  let archive: Awaited<ReturnType<typeof readArchivedRows>>;
  try {
    archive = await readArchivedRows(raw, problems);
  } finally {
    raw.close();
  }
  const report: InvariantReport = {
    rowsChecked: expected.lines.size + expected.deletedByApp.size,
    rowsInTable: inTable.size,
    rowsArchived: archive.copies.size,
    rowsLost: 0,
    rowsDuplicated: 0,
    rowsInTableAndArchive: 0,
    staleCopies: 0,
    unknownRows: 0,
    rowsOnlyInFlight: 0,
    committedObjects: archive.committed,
    pendingMarkers: archive.pending,
    objectsWithoutMetadata: archive.withoutMetadata,
    problems,
    archivedRows: [...archive.copies].flatMap(([key, copies]) => copies.map((c) => ({ key, ...c }))),
  };
  const judge = (k: string, want: string | undefined): void => {
    const copies = archive.copies.get(k) ?? [];
    const row = inTable.get(k);
    if (copies.length > 1) {
      report.rowsDuplicated++;
      problems.push(`row ${k} is in ${copies.length} committed objects: ${copies.map((c) => c.object).join(', ')}`);
    }
    if (row !== undefined && copies.length > 0) {
      report.rowsInTableAndArchive++;
      problems.push(`row ${k} is still in the table and also in ${copies[0]!.object}`);
    }
    if (want === undefined) {
      // Deleted by the application, so never by the archiver: no committed object may list it.
      if (row !== undefined) problems.push(`row ${k} was deleted by the application but is in the table`);
      if (copies.length > 0) problems.push(`row ${k} was deleted by the application, not by the archiver, yet ${copies[0]!.object} lists it`);
      return;
    }
    if (row === undefined && copies.length === 0) {
      if ((archive.inFlight.get(k) ?? []).some((c) => c.line === want)) {
        report.rowsOnlyInFlight++;
        problems.push(`row ${k} is only in an object still marked in flight`);
      } else {
        report.rowsLost++;
        problems.push(`row ${k} is lost: neither in the table nor in an archived object`);
      }
    }
    if (row !== undefined && row !== want) problems.push(`row ${k} in the table is not its expected version: ${row}`);
    for (const c of copies) {
      if (c.line !== want) {
        report.staleCopies++;
        problems.push(`row ${k} in ${c.object} differs from its last version:\n  archived ${c.line}\n  expected ${want}`);
      }
    }
  };
  for (const [k, line] of expected.lines) judge(k, line);
  for (const k of expected.deletedByApp) judge(k, undefined);
  for (const k of archive.copies.keys()) {
    if (!expected.lines.has(k) && !expected.deletedByApp.has(k)) {
      report.unknownRows++;
      problems.push(`row ${k} is archived but never existed in the table`);
    }
  }
  for (const k of inTable.keys()) {
    if (!expected.lines.has(k)) problems.push(`row ${k} appeared in the table during the scenario`);
  }
  return report;
}
