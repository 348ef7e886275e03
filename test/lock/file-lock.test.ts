/** The lock file of local mode against a real directory: exclusive creation, heartbeat, stale takeover, release. */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm, stat, utimes, writeFile, mkdir } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LockTimings } from '../../src/config/schema.js';
import { serializeFileLockContent, type FileLockContent } from '../../src/core/file-lock-state.js';
import type { TableLock } from '../../src/core/table-lock.js';
import { acquireFileLock, fileLockPath, forceRemoveFileLock, readFileLock, type AcquireFileLockOptions } from '../../src/state/file-lock.js';

// A generous timeout: a slow beat on a loaded machine must not count as a lost lock here.
const timings: LockTimings = { heartbeatIntervalMs: 50, heartbeatTimeoutMs: 5_000, staleAfterMs: 30_000 };
const id = { database: 'app', schema: 'public', table: 'we/ird' };

let dir: string;
let file: string;
const held: TableLock[] = [];
const warnings: string[] = [];

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'auditlog-file-lock-'));
  file = fileLockPath(dir, id);
  warnings.length = 0;
});
afterEach(async () => {
  for (const l of held.splice(0)) await l.release().catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

const acquire = async (runId: string, over: Partial<AcquireFileLockOptions> = {}): Promise<TableLock> => {
  const lock = await acquireFileLock({ file, label: 'app/public.we/ird', runId, timings, warn: (m) => warnings.push(m), ...over });
  held.push(lock);
  return lock;
};

const writeLock = async (content: FileLockContent): Promise<void> => {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, serializeFileLockContent(content));
};

/** A pid that surely belonged to a process of this host that has exited. */
const deadPid = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['-e', '']);
    child.on('error', reject);
    child.on('exit', () => resolve(child.pid!));
  });

const waitFor = async (cond: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 20));
  }
};

describe('table lock file', () => {
  it('lives under _auditlog/locks/<db>/<schema>.<table>.lock with encoded names, and holds who, where and since when', async () => {
    expect(path.relative(dir, file)).toBe(path.join('_auditlog', 'locks', 'app', 'public.we%2Fird.lock'));
    await acquire('run-1');
    const read = await readFileLock(file);
    expect(read?.content).toMatchObject({ pid: process.pid, hostname: hostname(), run_id: 'run-1' });
    expect(read?.content?.acquired_at).toMatch(/^\d{4}-\d{2}-\d{2}T/);
  });

  it('refuses a second acquisition while the first is live, naming the holder, since when and the fix', async () => {
    await acquire('run-1');
    const second = acquire('run-2');
    await expect(second).rejects.toMatchObject({ code: 'LOCK_HELD' });
    const message = ((await second.catch((e: unknown) => e)) as Error).message;
    expect(message).toContain(`pid ${process.pid} on ${hostname()} (run run-1)`);
    expect(message).toContain('holding since');
    expect(message).toContain('last heartbeat');
    expect(message).toContain('--force-unlock');
    expect((await readFileLock(file))?.content?.run_id).toBe('run-1');
  });

  it('refuses a live lock of another host, whose pid cannot be checked', async () => {
    const stamp = new Date().toISOString();
    await writeLock({ pid: 1, hostname: 'elsewhere', run_id: 'remote', acquired_at: stamp, heartbeat_at: stamp });
    await expect(acquire('run-2')).rejects.toMatchObject({ code: 'LOCK_HELD', details: { holder_host: 'elsewhere', holder_run_id: 'remote' } });
  });

  it('takes over a lock whose process on this host is gone, with a warning naming the old holder', async () => {
    const pid = await deadPid();
    const stamp = new Date().toISOString();
    await writeLock({ pid, hostname: hostname(), run_id: 'crashed', acquired_at: stamp, heartbeat_at: stamp });
    const lock = await acquire('run-2');
    expect(lock.isHeld()).toBe(true);
    expect((await readFileLock(file))?.content?.run_id).toBe('run-2');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain(`process ${pid} on ${hostname()} no longer exists`);
    expect(warnings[0]).toContain('run crashed');
  });

  it('takes over a lock whose heartbeat is older than stale_after_ms', async () => {
    const old = new Date(Date.now() - 60_000).toISOString();
    await writeLock({ pid: 1, hostname: 'elsewhere', run_id: 'hung', acquired_at: old, heartbeat_at: old });
    await acquire('run-2');
    expect((await readFileLock(file))?.content?.run_id).toBe('run-2');
    expect(warnings[0]).toContain('last heartbeat 1m 0s ago');
  });

  it('takes over a lock left by a host whose clock is ahead once the file is old, not at that clock\'s time', async () => {
    const ahead = new Date(Date.now() + 3 * 86_400_000).toISOString();
    await writeLock({ pid: 1, hostname: 'elsewhere', run_id: 'skewed', acquired_at: ahead, heartbeat_at: ahead });
    await expect(acquire('run-2')).rejects.toMatchObject({ code: 'LOCK_HELD' });
    const past = new Date(Date.now() - 60_000);
    await utimes(file, past, past);
    await acquire('run-3');
    expect((await readFileLock(file))?.content?.run_id).toBe('run-3');
    expect(warnings[0]).toContain('in the future');
  });

  it('a lock file still empty because its creator is writing it is read again: the refusal names the holder (found by CI)', async () => {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, '');
    const writing = new Promise<void>((resolve) => setTimeout(() => resolve(writeLock({ pid: process.pid, hostname: hostname(), run_id: 'run-1', acquired_at: new Date().toISOString(), heartbeat_at: new Date().toISOString() })), 60));
    const refused = await acquire('run-2').catch((error: unknown) => error);
    await writing;
    expect(refused).toMatchObject({ code: 'LOCK_HELD' });
    expect((refused as Error).message).toContain('(run run-1)');
    expect((refused as Error).message).not.toContain('unreadable');
  });

  it('takes over an unreadable lock file only once it is old', async () => {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, '');
    await expect(acquire('run-2')).rejects.toMatchObject({ code: 'LOCK_HELD' });
    const past = new Date(Date.now() - 60_000);
    await utimes(file, past, past);
    await acquire('run-3');
    expect((await readFileLock(file))?.content?.run_id).toBe('run-3');
  });

  it('rewrites heartbeat_at while held, and removes the file on release', async () => {
    const lock = await acquire('run-1');
    const first = (await readFileLock(file))!.content!.heartbeat_at;
    await waitFor(async () => (await readFileLock(file))?.content?.heartbeat_at !== first);
    expect(lock.isHeld()).toBe(true);
    await lock.release();
    expect(await readFileLock(file)).toBeUndefined();
    expect(lock.isHeld()).toBe(false);
    expect(lock.lostReason()).toBeUndefined();
  });

  it('is lost when force-unlocked; its release then leaves the next holder\'s lock alone', async () => {
    const lock = await acquire('run-1');
    const removed = await forceRemoveFileLock(file);
    expect(removed?.content?.run_id).toBe('run-1');
    await waitFor(() => !lock.isHeld());
    expect(lock.lostReason()).toContain('was removed');
    const next = await acquire('run-2');
    await lock.release();
    expect((await readFileLock(file))?.content?.run_id).toBe('run-2');
    expect(next.isHeld()).toBe(true);
  });

  it('is lost when another run took the file over', async () => {
    const lock = await acquire('run-1');
    const stamp = new Date().toISOString();
    await writeLock({ pid: 1, hostname: 'elsewhere', run_id: 'thief', acquired_at: stamp, heartbeat_at: stamp });
    await waitFor(() => !lock.isHeld());
    expect(lock.lostReason()).toContain('now belongs to pid 1 on elsewhere (run thief)');
    await lock.release();
    expect((await readFileLock(file))?.content?.run_id).toBe('thief');
  });

  it('lets exactly one of many simultaneous acquisitions win, also over a stale lock', async () => {
    for (const staleFirst of [false, true]) {
      if (staleFirst) {
        const old = new Date(Date.now() - 60_000).toISOString();
        await writeLock({ pid: 1, hostname: 'elsewhere', run_id: 'hung', acquired_at: old, heartbeat_at: old });
      }
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => acquire(`racer-${staleFirst}-${i}`)));
      const won = results.filter((r) => r.status === 'fulfilled');
      expect(won).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'LOCK_HELD' });
      for (const l of held.splice(0)) await l.release();
      expect(await stat(file).catch(() => undefined)).toBeUndefined();
    }
  });

  it('leaves no temp files behind', async () => {
    const lock = await acquire('run-1');
    await new Promise((r) => setTimeout(r, 200));
    await lock.release();
    expect(await readdir(path.dirname(file))).toEqual([]);
  });
});
