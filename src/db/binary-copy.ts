/**
 * `COPY (query) TO STDOUT (FORMAT binary)`: the result as raw bytes, split into rows of fields.
 * Why not an ordinary query: node-postgres decodes every text value into a JavaScript string,
 * and the archive's JSON lines (megabytes per page) were decoded there only to be encoded back
 * into bytes for compression — two full passes of the main thread over every archived byte
 * (docs/benchmarks.md). In the binary format a text value is its bytes in the client encoding
 * (UTF-8 here), so a field can be handed on as a Buffer without either pass.
 */
import type pg from 'pg';
import copyStreams from 'pg-copy-streams';
import { AuditlogError } from '../core/errors.js';

const SIGNATURE = Buffer.from('PGCOPY\n\xff\r\n\0', 'latin1');

/**
 * A parsed binary COPY result: where each field's bytes lie in the raw output. Fields are read
 * through it rather than handed out as one Buffer view each, which for 10,000 rows of 8 fields
 * per page was 80,000 short-lived objects for the garbage collector.
 */
export class BinaryRows {
  constructor(
    readonly data: Buffer,
    readonly count: number,
    readonly fieldCount: number,
    /** Per field, row-major: start offset, then length (-1 for NULL). */
    private readonly spans: Float64Array,
  ) {}

  isNull(row: number, field: number): boolean {
    return this.spans[(row * this.fieldCount + field) * 2 + 1]! === -1;
  }

  /** The field's UTF-8 text (the empty string for NULL: check isNull where NULL is possible). */
  text(row: number, field: number): string {
    const at = (row * this.fieldCount + field) * 2;
    const start = this.spans[at]!;
    const length = this.spans[at + 1]!;
    return length <= 0 ? '' : this.data.toString('utf8', start, start + length);
  }

  length(row: number, field: number): number {
    return Math.max(this.spans[(row * this.fieldCount + field) * 2 + 1]!, 0);
  }

  /** Copies the field's bytes into `target` at `offset`; returns how many. */
  copy(row: number, field: number, target: Buffer, offset: number): number {
    const at = (row * this.fieldCount + field) * 2;
    const length = this.spans[at + 1]!;
    return length <= 0 ? 0 : this.data.copy(target, offset, this.spans[at]!, this.spans[at]! + length);
  }

  /** Whether two rows' fields hold the same bytes. */
  sameField(a: number, b: number, field: number): boolean {
    const i = (a * this.fieldCount + field) * 2;
    const j = (b * this.fieldCount + field) * 2;
    const length = this.spans[i + 1]!;
    if (length !== this.spans[j + 1]!) return false;
    return length <= 0 || this.data.compare(this.data, this.spans[j]!, this.spans[j]! + length, this.spans[i]!, this.spans[i]! + length) === 0;
  }
}

/**
 * Parses a complete binary COPY stream (header, tuples, trailer) of rows with `fieldCount`
 * fields each. Pure; throws DB_QUERY on anything malformed rather than guessing.
 */
export function parseBinaryCopy(data: Buffer, fieldCount: number): BinaryRows {
  const malformed = (what: string): never => {
    throw new AuditlogError('DB_QUERY', `malformed binary COPY output from the server (${what})`);
  };
  if (data.length < SIGNATURE.length + 8 || !data.subarray(0, SIGNATURE.length).equals(SIGNATURE)) malformed('bad signature');
  let at = SIGNATURE.length + 4; // flags: no bits we need (OIDs are never requested)
  const extension = data.readUInt32BE(at);
  at += 4 + extension;
  // Float64Array, not Int32Array: offsets past 2 GiB stay exact.
  let spans = new Float64Array(1024 * fieldCount * 2);
  let rows = 0;
  for (;;) {
    if (at + 2 > data.length) malformed('no trailer');
    const fields = data.readInt16BE(at);
    at += 2;
    if (fields === -1) break;
    if (fields !== fieldCount) malformed(`${fields} fields in a row, expected ${fieldCount}`);
    if ((rows + 1) * fieldCount * 2 > spans.length) {
      const grown = new Float64Array(spans.length * 2);
      grown.set(spans);
      spans = grown;
    }
    for (let i = 0; i < fields; i++) {
      if (at + 4 > data.length) malformed('truncated field length');
      const length = data.readInt32BE(at);
      at += 4;
      const slot = (rows * fieldCount + i) * 2;
      spans[slot] = at;
      spans[slot + 1] = length;
      if (length === -1) continue;
      if (length < 0 || at + length > data.length) malformed('truncated field');
      at += length;
    }
    rows++;
  }
  if (at !== data.length) malformed('data after the trailer');
  return new BinaryRows(data, rows, fieldCount, spans);
}

/**
 * Where successive COPY reads of one reader put their raw output: one buffer, grown as needed and
 * reused, instead of a fresh page-sized buffer per read (a page is dead once its rows are copied
 * out, and each new multi-megabyte buffer pushed the collector into another full collection).
 * The BinaryRows of a read are valid only until the next read into the same CopyBuffer.
 */
export class CopyBuffer {
  private buffer = Buffer.allocUnsafe(0);
  private used = 0;

  /** Starts a new read: what the previous one held is overwritten from here on. */
  reset(): void {
    this.used = 0;
  }

  append(chunk: Buffer): void {
    if (this.used + chunk.length > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(this.used + chunk.length, this.buffer.length * 2, 64 * 1024));
      this.buffer.copy(grown, 0, 0, this.used);
      this.buffer = grown;
    }
    this.used += chunk.copy(this.buffer, this.used);
  }

  /** The bytes of the current read (a view: valid until the next reset). */
  contents(): Buffer {
    return this.buffer.subarray(0, this.used);
  }
}

/**
 * A field of a COPY result longer than allowed, seen from its length header, before its bytes
 * arrive. The COPY was abandoned mid-stream: the connection must be discarded, not reused.
 */
export class FieldTooLargeError extends Error {
  constructor(
    /** 0-based row of the result. */
    readonly row: number,
    readonly field: number,
    /** The field's length in bytes, as its header gave it. */
    readonly bytes: number,
  ) {
    super(`field ${field} of row ${row} of the COPY output is ${bytes} bytes`);
    this.name = 'FieldTooLargeError';
  }
}

/**
 * Follows a binary COPY stream's structure as its bytes arrive (headers only: a field's bytes are
 * skipped, arrived or not), so a field over the limit is refused from its 4-byte length header,
 * before any of its bytes are held.
 */
class FieldLengthGuard {
  /** Offset of the next header to read; -1 while the file header is incomplete. */
  private at = -1;
  private row = 0;
  /** Field of the current row whose length header comes next; -1 for the row's field count. */
  private field = -1;
  private fields = 0;
  private done = false;

  constructor(
    private readonly field0: number,
    private readonly maxBytes: number,
  ) {}

  /** Reads the headers that `data` (everything received so far) completes; throws FieldTooLargeError. */
  check(data: Buffer): void {
    if (this.at === -1) {
      if (data.length < SIGNATURE.length + 8) return;
      this.at = SIGNATURE.length + 8 + data.readUInt32BE(SIGNATURE.length + 4);
    }
    while (!this.done) {
      if (this.field === -1) {
        if (this.at + 2 > data.length) return;
        this.fields = data.readInt16BE(this.at);
        this.at += 2;
        if (this.fields === -1) this.done = true;
        else this.field = 0;
        continue;
      }
      if (this.at + 4 > data.length) return;
      const length = data.readInt32BE(this.at);
      if (this.field === this.field0 && length > this.maxBytes) throw new FieldTooLargeError(this.row, this.field, length);
      this.at += 4 + Math.max(length, 0);
      if (++this.field >= this.fields) {
        this.field = -1;
        this.row++;
      }
    }
  }
}

/**
 * Runs `COPY (<query>) TO STDOUT (FORMAT binary)` on `client`; its rows have `fieldCount` fields.
 * With `into`, the raw output lives in that reused buffer (see CopyBuffer for how long it is valid).
 * With `limit`, a value of field `limit.field` longer than `limit.maxBytes` stops the read with
 * FieldTooLargeError as soon as its length is known; `client` must then be discarded.
 */
export async function copyOutBinary(
  client: pg.ClientBase,
  query: string,
  fieldCount: number,
  into = new CopyBuffer(),
  limit?: { field: number; maxBytes: number },
): Promise<BinaryRows> {
  const stream = client.query(copyStreams.to(`COPY (${query}) TO STDOUT (FORMAT binary)`));
  const guard = limit === undefined ? null : new FieldLengthGuard(limit.field, limit.maxBytes);
  into.reset();
  for await (const chunk of stream) {
    into.append(chunk as Buffer);
    guard?.check(into.contents());
  }
  return parseBinaryCopy(into.contents(), fieldCount);
}
