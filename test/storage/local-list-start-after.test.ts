/**
 * The local store's list with startAfter: the same keys, in the same (UTF-8 byte) order, as a full
 * walk filtered afterwards — and subtrees that sort entirely at or before startAfter are never read
 * (an audit trail opening reads today's directory, not every day before it).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import type { ListOptions, ObjectInfo } from '../../src/storage/object-store.js';

const fsCalls = vi.hoisted(() => ({ readdir: [] as string[], lstat: [] as string[] }));

vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const readdir = ((dir: string, ...rest: unknown[]) => {
    fsCalls.readdir.push(dir);
    return (fs.readdir as (...a: unknown[]) => unknown)(dir, ...rest);
  }) as typeof fs.readdir;
  const lstat = ((file: string, ...rest: unknown[]) => {
    fsCalls.lstat.push(file);
    return (fs.lstat as (...a: unknown[]) => unknown)(file, ...rest);
  }) as typeof fs.lstat;
  return { ...fs, readdir, lstat, default: { ...fs, readdir, lstat } };
});

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'auditlog-list-after-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function collectList(store: LocalObjectStore, prefix: string, options?: ListOptions): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of store.list(prefix, options)) out.push(info);
  return out;
}

const byteOrder = (a: string, b: string): number => Buffer.compare(Buffer.from(a), Buffer.from(b));

// '/' (0x2F) sorts after '-' (0x2D) and '.' (0x2E) and before '0' (0x30): a directory `a` lists
// between the files `a.b` and `a0`. 'é' < U+FFFD < '😀' in UTF-8 bytes, but not in UTF-16 units.
const KEYS = [
  'a!',
  'a-b',
  'a-b.c/x',
  'a.b',
  'a/b',
  'a/b-c',
  'a/b.c/y',
  'a/b0',
  'a/c/d',
  'a/c/d.e/f',
  'a/c0',
  'a0',
  'a1/z',
  'b',
  'u/é',
  'u/\uFFFD',
  'u/😀',
  'u/😀x/y',
];

function boundaries(): string[] {
  const out = new Set<string>(['', 'a', 'a/', 'a.', 'a-', 'a/b/', 'a/b', 'a/c', 'a/c/', 'a/c/d/', 'a0', 'a0/', 'zzz', 'u/', 'u/\uE000', 'u/😀/']);
  for (const key of KEYS) {
    out.add(key);
    for (let i = 1; i < key.length; i++) out.add(key.slice(0, i));
  }
  return [...out].filter((s) => !s.includes('\uD83D') || s.includes('😀'));
}

describe('LocalObjectStore list with startAfter', () => {
  it('lists exactly what a full walk filtered by byte order would, from every boundary, under every prefix', async () => {
    const store = new LocalObjectStore({ path: root });
    for (const key of KEYS) await store.put(key, Buffer.from(key));
    const full = (await collectList(store, '')).map((o) => o.key);
    expect(full).toEqual([...KEYS].sort(byteOrder));
    for (const prefix of ['', 'a', 'a/', 'a/b', 'a/c', 'u/']) {
      const all = full.filter((k) => k.startsWith(prefix));
      for (const after of boundaries()) {
        const listed = (await collectList(store, prefix, { startAfter: after })).map((o) => o.key);
        expect(listed, `prefix ${JSON.stringify(prefix)} after ${JSON.stringify(after)}`).toEqual(all.filter((k) => byteOrder(k, after) > 0));
      }
    }
  });

  it('reads no directory and stats no file that sorts entirely at or before startAfter', async () => {
    const store = new LocalObjectStore({ path: root });
    const days = ['2026/10/30', '2026/10/31', '2026/11/01', '2026/11/29', '2026/11/30', '2026/12/01', '2027/01/01'];
    for (const day of days) for (let i = 0; i < 3; i++) await store.put(`_auditlog/audit/${day}/r${i}.json`, Buffer.from('{}'));
    fsCalls.readdir.length = 0;
    fsCalls.lstat.length = 0;
    const listed = (await collectList(store, '_auditlog/audit/', { startAfter: '_auditlog/audit/2026/11/30/' })).map((o) => o.key);
    expect(listed).toEqual(['2026/11/30', '2026/12/01', '2027/01/01'].flatMap((d) => [0, 1, 2].map((i) => `_auditlog/audit/${d}/r${i}.json`)));
    const rel = (p: string): string => path.relative(root, p).split(path.sep).join('/');
    expect(fsCalls.readdir.map(rel)).toEqual([
      '_auditlog/audit',
      '_auditlog/audit/2026',
      '_auditlog/audit/2026/11',
      '_auditlog/audit/2026/11/30',
      '_auditlog/audit/2026/12',
      '_auditlog/audit/2026/12/01',
      '_auditlog/audit/2027',
      '_auditlog/audit/2027/01',
      '_auditlog/audit/2027/01/01',
    ]);
    expect(fsCalls.lstat.map(rel)).toEqual(listed);
    // Inside a directory, files at or before startAfter are not stat'ed either.
    fsCalls.lstat.length = 0;
    expect((await collectList(store, '_auditlog/audit/', { startAfter: '_auditlog/audit/2026/11/30/r1.json' })).map((o) => o.key)[0]).toBe('_auditlog/audit/2026/11/30/r2.json');
    expect(fsCalls.lstat.map(rel)[0]).toBe('_auditlog/audit/2026/11/30/r2.json');
  });
});
