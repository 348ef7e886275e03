/**
 * Local mode: one archiver per (database, table) on this archive directory, by a lock file at
 * `<local.path>/_auditlog/locks/<db>/<schema>.<table>.lock`. It guards the directory the way the
 * advisory lock guards the database: two runs against different servers (or a database whose
 * session locks do not hold, behind a pooler) still cannot write the same table's archive at once.
 *
 * Created with O_EXCL, so exactly one creator wins; its heartbeat rewrites `heartbeat_at` (temp
 * file + rename, never a torn file); a stale one is taken over under a `.takeover` guard file so two
 * instances that both judged it stale cannot both take it.
 */
import { randomBytes } from 'node:crypto';
import { hostname as osHostname } from 'node:os';
import { mkdir, open, readFile, rename, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { lockFileKey } from '../core/archive-layout.js';
import { AuditlogError, describeError, isAuditlogError } from '../core/errors.js';
import {
  describeFileLockHolder,
  judgeFileLock,
  parseFileLockContent,
  serializeFileLockContent,
  type FileLockContent,
} from '../core/file-lock-state.js';
import { startHeartbeat, type Heartbeat } from '../core/heartbeat.js';
import type { TableLock } from '../core/table-lock.js';
import type { LockTimings } from '../config/schema.js';
import { LOCAL_TEMP_SUFFIX } from '../storage/local-object-store.js';
import type { TableId } from './table-state.js';

/** Lost races in a row (a lock file appearing or changing under us) before giving up with LOCK_HELD. */
const MAX_ATTEMPTS = 4;
/** An empty lock file is read again this many times, this far apart (~200 ms): its creator may be writing it. */
const EMPTY_LOCK_REREADS = 10;
const EMPTY_LOCK_REREAD_MS = 20;

export function fileLockPath(root: string, id: TableId): string {
  return path.join(path.resolve(root), ...lockFileKey(id).split('/'));
}

export interface FileLockRead {
  /** undefined: present but not a lock file's JSON (being written, or damaged). */
  content: FileLockContent | undefined;
  raw: string;
  modifiedAtMs: number;
}

/** The lock file as it is now, or undefined when there is none. */
export async function readFileLock(file: string): Promise<FileLockRead | undefined> {
  try {
    const [raw, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    return { content: parseFileLockContent(raw), raw, modifiedAtMs: info.mtimeMs };
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return undefined;
    throw error;
  }
}

/** Whether a process with this pid exists on this host. EPERM: it exists, owned by another user. */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return !hasCode(error, 'ESRCH');
  }
}

export interface AcquireFileLockOptions {
  file: string;
  /** `db/schema.table`, for messages. */
  label: string;
  runId: string;
  timings: LockTimings;
  /** Stale takeovers are announced here, naming the old holder. */
  warn: (message: string, holder: FileLockContent | undefined) => void;
  onLost?: (reason: string) => void;
  hostname?: string;
  pid?: number;
  now?: () => number;
  holderAlive?: (pid: number) => boolean;
}

export async function acquireFileLock(o: AcquireFileLockOptions): Promise<TableLock> {
  try {
    return await tryAcquireFileLock(o);
  } catch (error) {
    if (isAuditlogError(error)) throw error;
    // A raw filesystem error (EACCES, EROFS, ENOSPC, EISDIR…) carries a syscall and an errno code,
    // and was reported as "lost the connection to the database" [DB_CONNECT] (found by probing).
    throw new AuditlogError(
      'STORAGE_IO',
      `the lock file of ${o.label} (${o.file}) could not be created or read: ${describeError(error)}; nothing of the table was read or deleted — make the archive directory's _auditlog/locks/ writable by the archiver (permissions, free space, read-only mount) and remove anything that is not a lock file in the lock file's place, then rerun`,
      { details: { table: o.label, lock_file: o.file }, cause: error },
    );
  }
}

async function tryAcquireFileLock(o: AcquireFileLockOptions): Promise<TableLock> {
  const now = o.now ?? Date.now;
  const self = { pid: o.pid ?? process.pid, hostname: o.hostname ?? osHostname(), run_id: o.runId };
  await mkdir(path.dirname(o.file), { recursive: true });
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const stamp = new Date(now()).toISOString();
    const mine: FileLockContent = { ...self, acquired_at: stamp, heartbeat_at: stamp };
    if (await createExclusive(o.file, mine)) return heldFileLock(o, mine);
    let existing = await readFileLock(o.file);
    // createExclusive opens with 'wx' and then writes: an archiver starting at the same moment
    // read the file still empty and named "an unreadable lock file" as the holder (found by CI).
    // Read an empty one again for a moment; one left empty by a crash is judged as before.
    for (let wait = 0; existing?.raw === '' && wait < EMPTY_LOCK_REREADS; wait++) {
      await new Promise((resolve) => setTimeout(resolve, EMPTY_LOCK_REREAD_MS));
      existing = await readFileLock(o.file);
    }
    if (existing === undefined) continue;
    const verdict = judgeFileLock({
      content: existing.content,
      modifiedAtMs: existing.modifiedAtMs,
      nowMs: now(),
      localHostname: self.hostname,
      holderAlive: o.holderAlive ?? isProcessAlive,
      staleAfterMs: o.timings.staleAfterMs,
    });
    if (!verdict.stale) throw lockHeldError(o, existing, now());
    if (await takeOver(o, existing, mine)) {
      o.warn(`took over the stale lock file of ${o.label} (${verdict.reason}) from ${holderText(existing, now())}`, existing.content);
      return heldFileLock(o, mine);
    }
  }
  throw new AuditlogError('LOCK_HELD', `the lock file of ${o.label} (${o.file}) kept changing while acquiring it: another archiver is starting on this directory; retry later`, {
    details: { table: o.label, lock_file: o.file },
  });
}

/**
 * Removes a table's lock file whoever holds it (`archive --force-unlock`) and returns what it
 * said. A live holder notices at its next heartbeat and stops before its next delete.
 */
export async function forceRemoveFileLock(file: string): Promise<FileLockRead | undefined> {
  const existing = await readFileLock(file);
  if (existing === undefined) return undefined;
  await unlink(file).catch((error: unknown) => {
    if (!hasCode(error, 'ENOENT')) throw error;
  });
  return existing;
}

function heldFileLock(o: AcquireFileLockOptions, mine: FileLockContent): TableLock {
  let held = true;
  let lost: string | undefined;
  const heartbeat: Heartbeat = startHeartbeat({
    intervalMs: o.timings.heartbeatIntervalMs,
    timeoutMs: o.timings.heartbeatTimeoutMs,
    beat: async () => {
      const current = await readFileLock(o.file);
      if (current === undefined) throw new Error(`the lock file ${o.file} was removed (force-unlocked?)`);
      if (current.content?.run_id !== mine.run_id) throw new Error(`the lock file ${o.file} now belongs to ${holderText(current, (o.now ?? Date.now)())}`);
      await writeAtomically(o.file, serializeFileLockContent({ ...mine, heartbeat_at: new Date((o.now ?? Date.now)()).toISOString() }));
    },
    onLost: (reason) => {
      if (!held) return;
      held = false;
      lost = reason;
      o.onLost?.(reason);
    },
  });
  return {
    isHeld: () => held,
    lostReason: () => lost,
    async release() {
      heartbeat.stop();
      held = false;
      // Only our own: after a force-unlock (or a takeover) the file belongs to another run.
      const current = await readFileLock(o.file);
      if (current?.content?.run_id === mine.run_id) await unlinkIfPresent(o.file);
    },
  };
}

/** True when the file did not exist and now holds `content`; false when another lock file is there. */
async function createExclusive(file: string, content: FileLockContent): Promise<boolean> {
  let handle;
  try {
    handle = await open(file, 'wx');
  } catch (error) {
    if (hasCode(error, 'EEXIST')) return false;
    throw error;
  }
  try {
    await handle.writeFile(serializeFileLockContent(content));
    await handle.sync();
  } catch (error) {
    await handle.close().catch(() => undefined);
    await unlinkIfPresent(file);
    throw error;
  }
  await handle.close();
  return true;
}

/**
 * Replaces the stale lock `judged` by ours, unless it changed since it was judged (its holder came
 * back, or another instance took it over first): then false, and the caller looks again.
 */
async function takeOver(o: AcquireFileLockOptions, judged: FileLockRead, mine: FileLockContent): Promise<boolean> {
  const guard = `${o.file}.takeover`;
  try {
    await (await open(guard, 'wx')).close();
  } catch (error) {
    if (!hasCode(error, 'EEXIST')) throw error;
    // A guard left by an instance that died mid-takeover is as stale as any lock file.
    const info = await stat(guard).catch(() => undefined);
    if (info !== undefined && Date.now() - info.mtimeMs > o.timings.staleAfterMs) await unlinkIfPresent(guard);
    else if (info !== undefined) {
      throw new AuditlogError('LOCK_HELD', `another archiver is taking over the stale lock file of ${o.label} right now (${guard}); retry later`, {
        details: { table: o.label, lock_file: o.file },
      });
    }
    return false;
  }
  try {
    const current = await readFileLock(o.file);
    if (current !== undefined && current.raw !== judged.raw) return false;
    await unlinkIfPresent(o.file);
    return await createExclusive(o.file, mine);
  } finally {
    await unlinkIfPresent(guard);
  }
}

function lockHeldError(o: AcquireFileLockOptions, existing: FileLockRead, nowMs: number): AuditlogError {
  return new AuditlogError(
    'LOCK_HELD',
    `${o.label} is being archived into this directory by ${holderText(existing, nowMs)} (lock file ${o.file}); wait for it to finish, or if that process is gone for good run auditlog archive --force-unlock`,
    {
      details: {
        table: o.label,
        lock_file: o.file,
        holder_pid: existing.content?.pid ?? null,
        holder_host: existing.content?.hostname ?? null,
        holder_run_id: existing.content?.run_id ?? null,
      },
    },
  );
}

function holderText(read: FileLockRead, nowMs: number): string {
  return read.content === undefined ? `an unreadable lock file (modified ${new Date(read.modifiedAtMs).toISOString()})` : describeFileLockHolder(read.content, nowMs);
}

/**
 * Rename over the lock file: a reader sees the old heartbeat or the new one, never a torn file.
 * No fsync: a heartbeat lost in a crash only makes the lock look older, and a crashed holder's
 * lock is stale anyway; an fsync on a busy disk could outlast the heartbeat timeout.
 */
async function writeAtomically(file: string, text: string): Promise<void> {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}-${randomBytes(4).toString('hex')}${LOCAL_TEMP_SUFFIX}`);
  await writeFile(temp, text);
  try {
    await rename(temp, file);
  } catch (error) {
    await unlinkIfPresent(temp);
    throw error;
  }
}

async function unlinkIfPresent(file: string): Promise<void> {
  await unlink(file).catch((error: unknown) => {
    if (!hasCode(error, 'ENOENT')) throw error;
  });
}

function hasCode(error: unknown, code: string): boolean {
  return (error as { code?: unknown } | null)?.code === code;
}
