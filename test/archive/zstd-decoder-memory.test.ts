/**
 * The WASM zstd decoder's memory only grows: an instance that decoded a large object is dropped so
 * its heap is collected, and the next use loads a new one. Measured in a child process (the built
 * codec, as the CLI loads it) with --expose-gc: external memory is where WASM heaps are counted.
 */
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rleFrame } from '../helpers/zstd-frames.js';

const MIB = 1024 * 1024;

/** Decodes frames of these sizes one after the other; external memory (MiB) after a full GC, and instances loaded, after each. */
function decodeInChild(sizes: number[]): { externalMiB: number; instances: number }[] {
  const codec = resolve('dist/src/archive/codec.js');
  const script = `
    const { decompressBody, zstdInstancesLoaded } = await import(${JSON.stringify(codec)});
    const frames = JSON.parse(process.argv[1]).map((f) => Buffer.from(f, 'base64'));
    const sizes = JSON.parse(process.argv[2]);
    const out = [];
    for (let i = 0; i < frames.length; i++) {
      let raw = await decompressBody('zstd', frames[i], { expectedBytes: sizes[i] });
      if (raw.length !== sizes[i]) throw new Error('decoded ' + raw.length);
      raw = undefined;
      for (let n = 0; n < 3; n++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); }
      out.push({ externalMiB: process.memoryUsage().external / ${MIB}, instances: zstdInstancesLoaded() });
    }
    console.log(JSON.stringify(out));`;
  const frames = JSON.stringify(sizes.map((n) => rleFrame(n).toString('base64')));
  const stdout = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script, frames, JSON.stringify(sizes)], { encoding: 'utf8' });
  return JSON.parse(stdout) as { externalMiB: number; instances: number }[];
}

describe('the zstd decoder after a large object', () => {
  it('drops its instance after decoding more than 64 MiB (memory comes back), keeps it for small objects, and decodes again after', () => {
    const [small, large, next] = decodeInChild([MIB, 100 * MIB, MIB]);
    expect(small!.instances).toBe(1);
    // Kept without the drop: the 100 MiB heap, and the package's own copy, stayed reachable.
    expect(large!.externalMiB).toBeLessThan(40);
    expect(next!.instances).toBe(2);
    expect(next!.externalMiB).toBeLessThan(40);
  });

  it('drops it too after a large frame that turns out malformed (a zstd error code after the heap grew)', () => {
    const size = 100 * MIB;
    // RLE blocks for all but the last 128 KiB, then a "compressed" block of garbage; the header still declares 100 MiB.
    const head = rleFrame(size - 128 * 1024);
    head.writeBigUInt64LE(BigInt(size), 5);
    const lastRle = head.length - 4;
    head.writeUIntLE(head.readUIntLE(lastRle, 3) & ~1, lastRle, 3); // no longer the last block
    const garbage = Buffer.alloc(16, 0xff);
    const block = Buffer.alloc(3);
    block.writeUIntLE((garbage.length << 3) | (2 << 1) | 1, 0, 3);
    const frame = Buffer.concat([head, block, garbage]);
    const codec = resolve('dist/src/archive/codec.js');
    const script = `
      const { decompressBody } = await import(${JSON.stringify(codec)});
      const frame = Buffer.from(process.argv[1], 'base64');
      const err = await decompressBody('zstd', frame, { expectedBytes: ${size} }).catch((e) => e);
      for (let n = 0; n < 3; n++) { globalThis.gc(); await new Promise((r) => setTimeout(r, 50)); }
      console.log(JSON.stringify({ error: err && err.name, externalMiB: process.memoryUsage().external / ${MIB} }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script, frame.toString('base64')], { encoding: 'utf8' })) as { error: string; externalMiB: number };
    expect(out.error).toBe('UndecodableObjectError');
    expect(out.externalMiB).toBeLessThan(40);
  });
});
