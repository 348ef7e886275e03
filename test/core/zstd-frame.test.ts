/** readZstdFrame on hand-made frames (RFC 8878 §3.1.1): what may be handed to the WASM decoder. */
import { describe, expect, it } from 'vitest';
import { readZstdFrame } from '../../src/core/zstd-frame.js';
import { compressBody } from '../../src/archive/codec.js';

/** One frame: magic, descriptor, optional window byte, the size field as given, then `blocks`. */
function frame(descriptor: number, fields: number[], blocks: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32LE(0xfd2fb528, 0);
  head[4] = descriptor;
  return Buffer.concat([head, Buffer.from(fields), blocks]);
}

/** A raw block of `bytes`, last or not. */
function rawBlock(bytes: Buffer, last: boolean): Buffer {
  const h = Buffer.alloc(3);
  h.writeUIntLE((bytes.length << 3) | (last ? 1 : 0), 0, 3);
  return Buffer.concat([h, bytes]);
}

describe('readZstdFrame', () => {
  const text = Buffer.from('{"id":1}\n');

  it('reads the declared size of what this tool writes, of every field width', async () => {
    const written = await compressBody('zstd', Buffer.from('{"id":1}\n'.repeat(5000)), 3);
    expect(readZstdFrame(written)).toEqual({ contentSize: 45_000 });
    // Single_Segment with a 1-byte size; 2-byte (value + 256); 4-byte with a window byte; 8-byte.
    expect(readZstdFrame(frame(0x20, [9], rawBlock(text, true)))).toEqual({ contentSize: 9 });
    expect(readZstdFrame(frame(0x60, [0x00, 0x01], rawBlock(text, true)))).toEqual({ contentSize: 512 });
    expect(readZstdFrame(frame(0x80, [0x58, 9, 0, 0, 0], rawBlock(text, true)))).toEqual({ contentSize: 9 });
    expect(readZstdFrame(frame(0xe0, [9, 0, 0, 0, 0, 0, 0, 0], rawBlock(text, true)))).toEqual({ contentSize: 9 });
    // A checksum after the last block, an RLE block (one byte stored), two blocks.
    expect(readZstdFrame(Buffer.concat([frame(0x24, [9], rawBlock(text, true)), Buffer.alloc(4)]))).toEqual({ contentSize: 9 });
    expect(readZstdFrame(frame(0x20, [9], Buffer.from([(9 << 3) | 0b011, 0, 0, 0x41])))).toEqual({ contentSize: 9 });
    expect(readZstdFrame(frame(0x20, [9], Buffer.concat([rawBlock(text.subarray(0, 4), false), rawBlock(text.subarray(4), true)])))).toEqual({ contentSize: 9 });
  });

  it.each([
    ['empty', Buffer.alloc(0), /too short/],
    ['gzip bytes', Buffer.from('1f8b0800000000000003', 'hex'), /magic number/],
    ['no declared size', frame(0x00, [0x58], rawBlock(text, true)), /declares no content size/],
    ['the reserved bit', frame(0x28, [9], rawBlock(text, true)), /reserved bit/],
    ['a header cut short', frame(0xe0, [9, 0, 0], Buffer.alloc(0)), /ends inside its frame header/],
    ['no last block', frame(0x20, [9], rawBlock(text, false)), /ends inside a block header/],
    ['a block cut short', frame(0x20, [9], rawBlock(text, true)).subarray(0, -2), /ends inside a block \(truncated\)/],
    ['a missing checksum', frame(0x24, [9], rawBlock(text, true)), /checksum/],
    ['a reserved block type', frame(0x20, [9], Buffer.from([0b111, 0, 0])), /reserved type/],
    ['a second frame', Buffer.concat([frame(0x20, [9], rawBlock(text, true)), frame(0x20, [9], rawBlock(text, true))]), /18 bytes follow its frame/],
    ['trailing bytes', Buffer.concat([frame(0x20, [9], rawBlock(text, true)), Buffer.from('x')]), /1 bytes follow its frame/],
    ['a size beyond 2^53', frame(0xe0, [0, 0, 0, 0, 0, 0, 0, 0xff], rawBlock(text, true)), /declares \d+ bytes of content/],
  ])('refuses %s', (_, body, problem) => {
    const read = readZstdFrame(body);
    expect(read).toHaveProperty('problem');
    expect((read as { problem: string }).problem).toMatch(problem);
  });
});
