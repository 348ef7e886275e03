import { spawnSync } from 'node:child_process';
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { LOCAL_TEMP_SUFFIX, LocalObjectStore } from '../../src/storage/local-object-store.js';
import { collectList, runObjectStoreContract } from './object-store-contract.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'auditlog-local-store-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('LocalObjectStore: ObjectStore contract', () => {
  runObjectStoreContract({ store: () => new LocalObjectStore({ path: path.join(root, 'archive') }) });
});

describe('LocalObjectStore', () => {
  it('describes itself by its absolute root', () => {
    const store = new LocalObjectStore({ path: path.join(root, 'archive') });
    expect(store.description).toBe(`${path.join(root, 'archive')}${path.sep}`);
  });

  it('writes through a temp file and leaves no temp file behind', async () => {
    const store = new LocalObjectStore({ path: root });
    await store.put('a/b/c.bin', Buffer.from('payload'));
    expect(await readdir(path.join(root, 'a', 'b'))).toEqual(['c.bin']);
    expect(await readFile(path.join(root, 'a', 'b', 'c.bin'), 'utf8')).toBe('payload');
  });

  it('never lists a temp file left by a crash mid-put, and get/head do not see it as the object', async () => {
    const store = new LocalObjectStore({ path: root });
    await store.put('day/real.jsonl.gz', Buffer.from('complete'));
    // What a process killed between write and rename leaves behind.
    const leftover = path.join(root, 'day', `.partial.jsonl.gz.12345-abcdef${LOCAL_TEMP_SUFFIX}`);
    await writeFile(leftover, 'half of an obj');
    expect((await collectList(store, '')).map((o) => o.key)).toEqual(['day/real.jsonl.gz']);
    expect(await store.get('day/partial.jsonl.gz')).toBeUndefined();
    expect(await store.head('day/partial.jsonl.gz')).toBeUndefined();
  });

  it('shows readers the old or the new object during concurrent overwrites, never a part', async () => {
    const store = new LocalObjectStore({ path: root });
    const versions = [Buffer.alloc(2 * 1024 * 1024, 'a'), Buffer.alloc(3 * 1024 * 1024, 'b')];
    await store.put('race/object.bin', versions[0]!);
    let writing = true;
    const writer = (async () => {
      for (let i = 0; i < 20; i += 1) await store.put('race/object.bin', versions[i % 2]!);
      writing = false;
    })();
    const seen = new Set<number>();
    while (writing) {
      const body = await store.get('race/object.bin');
      expect(body).toBeDefined();
      expect(body!.equals(versions[0]!) || body!.equals(versions[1]!)).toBe(true);
      seen.add(body!.length);
      const listed = await collectList(store, 'race/');
      expect(listed.map((o) => o.key)).toEqual(['race/object.bin']);
    }
    await writer;
    expect(seen.size).toBeGreaterThan(0);
  });

  it('refuses keys that would collide with its temp files', async () => {
    const store = new LocalObjectStore({ path: root });
    await expect(store.put(`x/y${LOCAL_TEMP_SUFFIX}`, Buffer.from('x'))).rejects.toBeInstanceOf(AuditlogError);
  });

  it('never writes outside its root, whatever the key', async () => {
    const inner = path.join(root, 'inner');
    const store = new LocalObjectStore({ path: inner });
    for (const key of ['../outside.txt', 'a/../../outside.txt', '/tmp/outside.txt', '..\\outside.txt']) {
      await expect(store.put(key, Buffer.from('x'))).rejects.toMatchObject({ code: 'STORAGE_IO' });
    }
    expect(await readdir(root)).toEqual([]);
  });

  it('lists in S3 key order (UTF-8 bytes), where a directory sorts as "name/"', async () => {
    const store = new LocalObjectStore({ path: root });
    const keys = ['k/a/c', 'k/a.b', 'k/a-b', 'k/ab', 'k/a/b/c', 'k/Z', 'k/é', 'k/z', 'k/\u{1F600}', 'k/\uFF5E'];
    for (const key of keys) await store.put(key, Buffer.from(key));
    const expected = [...keys].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
    expect((await collectList(store, 'k/')).map((o) => o.key)).toEqual(expected);
    expect((await collectList(store, 'k/a')).map((o) => o.key)).toEqual(expected.filter((k) => k.startsWith('k/a')));
  });

  it('lists through symbolic links as put/get/head go through them; a broken or looping link fails the listing (found by probing)', async () => {
    const store = new LocalObjectStore({ path: path.join(root, 'archive') });
    await store.put('t/day=1/a.jsonl.gz', Buffer.from('one'));
    await store.put('t/day=2/b.jsonl.gz', Buffer.from('three'));
    // A day directory moved to another volume and linked back, and a file linked from elsewhere.
    await mkdir(path.join(root, 'cold'));
    await rename(path.join(root, 'archive', 't', 'day=2'), path.join(root, 'cold', 'day=2'));
    await symlink(path.join(root, 'cold', 'day=2'), path.join(root, 'archive', 't', 'day=2'));
    await writeFile(path.join(root, 'cold', 'c.bin'), 'linked file');
    await symlink(path.join(root, 'cold', 'c.bin'), path.join(root, 'archive', 't', 'day=1', 'c.jsonl.gz'));
    // Written through the link, as every put is: list must show it too.
    await store.put('t/day=2/d.jsonl.gz', Buffer.from('four'));
    expect((await collectList(store, 't/')).map((o) => [o.key, o.size])).toEqual([
      ['t/day=1/a.jsonl.gz', 3],
      ['t/day=1/c.jsonl.gz', 11],
      ['t/day=2/b.jsonl.gz', 5],
      ['t/day=2/d.jsonl.gz', 4],
    ]);
    expect((await store.head('t/day=2/b.jsonl.gz'))?.size).toBe(5);

    await symlink('..', path.join(root, 'archive', 't', 'day=1', 'up'));
    await expect(collectList(store, 't/')).rejects.toMatchObject({ code: 'STORAGE_IO', message: expect.stringContaining('t/day=1/up') });
    await rm(path.join(root, 'archive', 't', 'day=1', 'up'));

    // The volume not mounted: skipping the link reported its objects as never archived, silently.
    await rm(path.join(root, 'cold', 'day=2'), { recursive: true });
    const broken = await collectList(store, 't/').catch((error: unknown) => error);
    expect(broken).toBeInstanceOf(AuditlogError);
    expect(broken).toMatchObject({ code: 'STORAGE_IO' });
    expect((broken as Error).message).toMatch(/t\/day=2 under .* is a symbolic link to .*cold\/day=2, which does not exist; mount or restore/);
    // Listing from at or below the broken link (a closed --from/--to range lists day by day): it
    // found no directory and listed nothing, so validate said OK (found in review).
    for (const prefix of ['t/day=2/', 't/day=2/b', 't/day=2/sub/']) {
      await expect(collectList(store, prefix), prefix).rejects.toMatchObject({ code: 'STORAGE_IO', message: expect.stringContaining('t/day=2 under') });
    }
    // A directory simply not written yet is still an empty listing.
    expect(await collectList(store, 't/day=3/')).toEqual([]);
    expect(await collectList(store, 't/day=1/a.jsonl.gz/x')).toEqual([]);
  });

  it('cleanup removes interrupted writes inside linked directories too, and walks a loop once', async () => {
    const store = new LocalObjectStore({ path: path.join(root, 'archive') });
    await store.put('t/day=1/a.jsonl.gz', Buffer.from('one'));
    await mkdir(path.join(root, 'cold', 'day=2'), { recursive: true });
    await symlink(path.join(root, 'cold', 'day=2'), path.join(root, 'archive', 't', 'day=2'));
    await symlink('..', path.join(root, 'archive', 't', 'day=1', 'up'));
    const temp = path.join(root, 'cold', 'day=2', '.b.jsonl.gz.123-abcdef.auditlog-tmp');
    await writeFile(temp, 'partial');
    const report = await store.cleanupInterrupted({ olderThan: new Date(Date.now() + 60_000), dryRun: false });
    expect(report.items.map((i) => [i.key, i.action])).toEqual([['t/day=2/.b.jsonl.gz.123-abcdef.auditlog-tmp', 'deleted']]);
    await expect(stat(temp)).rejects.toMatchObject({ code: 'ENOENT' });
  });

  it('lists nothing when the root does not exist yet', async () => {
    const store = new LocalObjectStore({ path: path.join(root, 'not', 'yet') });
    expect(await collectList(store, '')).toEqual([]);
    expect(await store.get('a.txt')).toBeUndefined();
  });

  it('check() creates a missing root and leaves nothing in it', async () => {
    const archive = path.join(root, 'deep', 'archive');
    const store = new LocalObjectStore({ path: archive });
    await store.check();
    expect(await readdir(archive)).toEqual([]);
  });

  it('check() fails with a one-line STORAGE_CONFLICT when a file stands where the root should be', async () => {
    const blocked = path.join(root, 'blocked');
    await writeFile(blocked, 'not a directory');
    const error = await new LocalObjectStore({ path: path.join(blocked, 'archive') }).check().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditlogError);
    expect((error as AuditlogError).code).toBe('STORAGE_CONFLICT');
    expect((error as AuditlogError).message).toContain(blocked);
    expect((error as AuditlogError).message).not.toContain('\n');
  });

  it('fails a put with STORAGE_CONFLICT when a directory holds the key', async () => {
    const store = new LocalObjectStore({ path: root });
    await mkdir(path.join(root, 'x', 'taken'), { recursive: true });
    await writeFile(path.join(root, 'x', 'taken', 'inside'), 'x');
    await expect(store.put('x/taken', Buffer.from('x'))).rejects.toMatchObject({ code: 'STORAGE_CONFLICT' });
    expect((await collectList(store, 'x/')).map((o) => o.key)).toEqual(['x/taken/inside']);
    expect(await readdir(path.join(root, 'x'))).toEqual(['taken']);
  });

  it('fails with STORAGE_ACCESS naming the path when the root is not writable', async () => {
    const readOnly = path.join(root, 'ro');
    await mkdir(readOnly, { mode: 0o500 });
    if (process.getuid?.() !== 0) {
      const error = await new LocalObjectStore({ path: readOnly }).put('a.txt', Buffer.from('x')).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'STORAGE_ACCESS' });
      expect((error as AuditlogError).message).toContain(readOnly);
      return;
    }
    // Root writes anywhere: run the same put as an unprivileged user, through the built module,
    // copied where that user can read it (the checkout may sit in a directory only root can enter).
    await chmod(root, 0o755);
    const modules = path.join(root, 'modules');
    for (const dir of ['core', 'storage']) await cp(path.join(process.cwd(), 'dist/src', dir), path.join(modules, dir), { recursive: true });
    const script = `import { LocalObjectStore } from ${JSON.stringify(path.join(modules, 'storage/local-object-store.js'))};
      new LocalObjectStore({ path: ${JSON.stringify(readOnly)} }).put('a.txt', Buffer.from('x')).then(
        () => console.log(JSON.stringify({ ok: true })),
        (e) => console.log(JSON.stringify({ code: e.code, message: e.message })));`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
    const result = JSON.parse(child.stdout.trim()) as { code?: string; message?: string };
    expect(result.code, child.stderr).toBe('STORAGE_ACCESS');
    expect(result.message).toContain(readOnly);
  });
});
