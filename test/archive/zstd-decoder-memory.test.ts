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
});
