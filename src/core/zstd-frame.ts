/**
 * Reads the outline of a zstd object without decompressing it (RFC 8878 §3.1.1), pure. The WASM
 * decoder allocates whatever size a frame header declares (or 1 MiB when it declares none and
 * fails beyond it), and decodes every frame of its input into that one buffer: so before any
 * object is handed to it, it must be exactly one frame, declaring its size, with nothing after it.
 * Every object this tool writes is one frame from a one-shot compression, which always declares
 * its content size.
 */

const MAGIC = 0xfd2fb528;

export interface ZstdFrameOutline {
  /** Frame_Content_Size: the decompressed size the header declares. */
  contentSize: number;
}

/** Why `body` is not exactly one zstd frame that declares its size, or its outline. */
export function readZstdFrame(body: Buffer): ZstdFrameOutline | { problem: string } {
  if (body.length < 6) return { problem: `it is ${body.length} bytes, too short for a zstd frame` };
  if (body.readUInt32LE(0) !== MAGIC) return { problem: 'it does not start with the zstd magic number' };
  const descriptor = body[4]!;
  if ((descriptor & 0x08) !== 0) return { problem: 'its frame header sets the reserved bit' };
  const singleSegment = (descriptor & 0x20) !== 0;
  const fcsFlag = descriptor >> 6;
  const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : [0, 2, 4, 8][fcsFlag]!;
  const dictBytes = [0, 1, 2, 4][descriptor & 0x03]!;
  const hasChecksum = (descriptor & 0x04) !== 0;
  let at = 5 + (singleSegment ? 0 : 1) + dictBytes;
  if (fcsBytes === 0) return { problem: 'its frame header declares no content size' };
  if (at + fcsBytes > body.length) return { problem: 'it ends inside its frame header' };
  let contentSize: number;
  if (fcsBytes === 1) contentSize = body[at]!;
  else if (fcsBytes === 2) contentSize = body.readUInt16LE(at) + 256;
  else if (fcsBytes === 4) contentSize = body.readUInt32LE(at);
  else {
    const size = body.readBigUInt64LE(at);
    if (size > BigInt(Number.MAX_SAFE_INTEGER)) return { problem: `its frame header declares ${size} bytes of content` };
    contentSize = Number(size);
  }
  at += fcsBytes;
  // The blocks, by their 3-byte headers only: where the frame ends.
  for (;;) {
    if (at + 3 > body.length) return { problem: 'it ends inside a block header (truncated)' };
    const header = body[at]! | (body[at + 1]! << 8) | (body[at + 2]! << 16);
    at += 3;
    const last = (header & 1) === 1;
    const type = (header >> 1) & 3;
    const size = header >>> 3;
    if (type === 3) return { problem: 'it holds a block of the reserved type' };
    // An RLE block stores one byte, repeated `size` times when decoded.
    at += type === 1 ? 1 : size;
    if (at > body.length) return { problem: 'it ends inside a block (truncated)' };
    if (last) break;
  }
  if (hasChecksum) at += 4;
  if (at > body.length) return { problem: 'it ends inside its checksum (truncated)' };
  if (at !== body.length) return { problem: `${body.length - at} bytes follow its frame (a second frame or trailing garbage)` };
  return { contentSize };
}
