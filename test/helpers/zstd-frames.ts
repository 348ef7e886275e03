/**
 * zstd frames made by hand (RFC 8878), for objects this tool never writes: a few kilobytes that
 * declare, and decode to, as many bytes as asked — what a crafted or damaged object looks like.
 */
import { dataKey, metadataKeyFor, pendingMarkerKey } from '../../src/core/archive-layout.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import type { Compression } from '../../src/core/compression.js';

/** Largest block a decoder takes (Block_Maximum_Size). */
const BLOCK = 128 * 1024;

/** One frame declaring `bytes` (8-byte Frame_Content_Size, single segment) of `byte` repeated, as RLE blocks: ~4 bytes per 128 KiB. */
export function rleFrame(bytes: number, byte = 0x78): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32LE(0xfd2fb528, 0);
  header[4] = 0xe0;
  header.writeBigUInt64LE(BigInt(bytes), 5);
  const blocks: Buffer[] = [];
  for (let left = bytes; left > 0; left -= BLOCK) {
    const n = Math.min(BLOCK, left);
    const block = Buffer.alloc(4);
    block.writeUIntLE((n << 3) | (1 << 1) | (left === n ? 1 : 0), 0, 3);
    block[3] = byte;
    blocks.push(block);
  }
  return Buffer.concat([header, ...blocks]);
}

/** A batch left in flight without its sidecar (a crash after the upload): its marker and data object (zstd unless said). */
export async function putSidecarlessBatch(store: ObjectStore, prefix: string, day: string, name: string, body: Buffer, compression: Compression = 'zstd'): Promise<{ key: string; marker: string }> {
  const key = dataKey(prefix, day, name, compression);
  const marker = pendingMarkerKey(prefix, day, name, compression);
  await store.put(marker, Buffer.from(JSON.stringify({ data_object: key, metadata_object: metadataKeyFor(key), run_id: 'crashed-run', created_at: new Date().toISOString() })));
  await store.put(key, body);
  return { key, marker };
}
