/**
 * gzip has no size in its header, so a gzip object is bounded while it is inflated: by the
 * sidecar's uncompressed_bytes when there is one (more is damage, or a crafted "bomb" under a
 * matching sidecar: a verdict on the object), else by the caller's ceiling (reconciliation: no
 * verdict, the object is kept). Before, both read on until the process's memory or Node's buffer
 * limit ran out.
 */
import { gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { DecodeRefusedError, decompressBody, UndecodableObjectError } from '../../src/archive/codec.js';
import { streamObjectLines } from '../../src/validate/stream-object-lines.js';

const MIB = 1024 * 1024;
const lines = (n: number): Buffer => Buffer.from('{"a":1}\n'.repeat(n));

describe('decompressBody (gzip) within bounds', () => {
  const raw = lines(128 * 1024); // 1 MiB
  const body = gzipSync(raw);

  it('decodes an object of exactly the size its sidecar records', async () => {
    expect((await decompressBody('gzip', body, { expectedBytes: raw.length })).equals(raw)).toBe(true);
  });

  it('refuses one that inflates past the recorded size as undecodable (a verdict on the object)', async () => {
    const error = await decompressBody('gzip', body, { expectedBytes: 1000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UndecodableObjectError);
    expect((error as Error).message).toBe('it decodes to more than the 1000 bytes the metadata says');
  });

  it('without a sidecar, refuses past the ceiling without judging the object', async () => {
    const error = await decompressBody('gzip', body, { maxBytes: 4096 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DecodeRefusedError);
    expect((error as DecodeRefusedError).holds).toBe('decodes to more than 4096 bytes');
  });
});

describe('streamObjectLines (gzip) with a ceiling', () => {
  it('stops reading past maxBytes: a 256 MiB stream is refused after about the ceiling', async () => {
    const body = gzipSync(Buffer.alloc(256 * MIB, 0x78));
    let seen = 0;
    const error = await streamObjectLines(body, (line) => (seen += line.length), { compression: 'gzip', maxBytes: 2 * MIB }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DecodeRefusedError);
    expect((error as DecodeRefusedError).declaredBytes).toBeLessThanOrEqual(2 * MIB + 256 * 1024);
    expect(seen).toBe(0); // one endless line: nothing was handed out
  });

  it('with a sidecar, stops past its uncompressed_bytes: undecodable, read no further (validate)', async () => {
    const body = gzipSync(lines(32 * 1024 * 1024)); // 256 MiB of short lines
    let seen = 0;
    const error = await streamObjectLines(body, () => seen++, { compression: 'gzip', expectedBytes: 10 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(UndecodableObjectError);
    expect((error as Error).message).toBe('it decodes to more than the 10 bytes the metadata says');
    expect(seen).toBe(0); // stopped at the first chunk, before any line was handed on
  });

  it('reads an object within the ceiling in full', async () => {
    const got: string[] = [];
    const result = await streamObjectLines(gzipSync(lines(1000)), (line) => got.push(line), { compression: 'gzip', maxBytes: 8000 });
    expect(result.lines).toBe(1000);
    expect(got[999]).toBe('{"a":1}');
  });
});
