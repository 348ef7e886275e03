/**
 * Finding keys that may occur more than once among millions, in 8 bytes per key: each key's JSON
 * text is hashed to 53 bits, the hashes are sorted, and equal neighbours are the candidates. A
 * hash says "maybe the same key", never "the same key": superseded-lines.ts compares the texts of
 * the candidates before it leaves a line out, so a collision costs a comparison, not a row.
 * 53 bits, not 64: a double holds them exactly, so a Float64Array sorts them natively (no BigInt
 * per key); at 4 million keys per pass the expected number of colliding pairs is about 0.001.
 * Pure.
 */

/** A hash of a key's JSON text: an integer in [0, 2^53). Injected in tests to force collisions. */
export type KeyHash = (text: string) => number;

/** cyrb53 (bryc, public domain): two 32-bit multiply-xor lanes over the UTF-16 code units. */
export const hashKeyText: KeyHash = (text) => {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
};

/** A growable list of hashes in one Float64Array: 8 bytes per key, outside the JS heap. */
export class HashList {
  private data: Float64Array;
  length = 0;

  constructor(capacity = 1024) {
    this.data = new Float64Array(Math.max(16, capacity));
  }

  push(hash: number): void {
    if (this.length === this.data.length) {
      const grown = new Float64Array(this.data.length * 2);
      grown.set(this.data);
      this.data = grown;
    }
    this.data[this.length++] = hash;
  }

  /** The hashes pushed so far (a view, not a copy). */
  view(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

/** The hashes occurring more than once, sorted and each once. Sorts a copy: `hashes` keeps its order. */
export function duplicateHashes(hashes: Float64Array): Float64Array {
  const sorted = Float64Array.from(hashes).sort();
  const out: number[] = [];
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i] === sorted[i - 1] && out[out.length - 1] !== sorted[i]) out.push(sorted[i]!);
  }
  return Float64Array.from(out);
}

/** Where the sorted `set` holds `hash` (binary search), or -1. */
export function indexOfHash(set: Float64Array, hash: number): number {
  let lo = 0;
  let hi = set.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (set[mid]! < hash) lo = mid + 1;
    else hi = mid;
  }
  return lo < set.length && set[lo] === hash ? lo : -1;
}

