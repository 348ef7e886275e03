/**
 * ObjectStore over a local directory (or a mounted volume). A put is atomic and durable: the
 * bytes go to a temp file in the target directory, are fsynced, renamed over the key, and the
 * directory is fsynced, so after a crash a key holds the old object or the new one, never a part.
 * A create-only put (`ifAbsent`) links the temp file to the key instead of renaming it: link(2)
 * never replaces an existing name, so the check and the write are one atomic step.
 */
import { randomBytes } from 'node:crypto';
import { constants, type Dirent } from 'node:fs';
import { access, link, lstat, mkdir, open, readdir, readFile, readlink, realpath, rename, rm, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { AuditlogError, describeError } from '../core/errors.js';
import type { RetryConfig } from '../config/schema.js';
import type { CheckOptions, CleanupItem, CleanupOptions, CleanupReport, ConditionalCreateSupport, DeleteFailure, DeleteManyResult, ListOptions, ObjectInfo, ObjectStore, PutOptions, PutResult } from './object-store.js';
import { classifyFsError, type ErrorClassification } from './retry-policy.js';
import { validateKeyPrefix, validateObjectKey } from './validate-object-key.js';
import { verifyPutBody } from './verify-put-body.js';
import { RetryGaveUpError, withRetry, type RetryHooks } from './with-retry.js';

/**
 * Ending of every temp file the local store writes (`.<name>.<pid>-<random>.auditlog-tmp`).
 * list() never shows them; one left behind is the trace of a crash mid-put and safe to delete.
 */
export const LOCAL_TEMP_SUFFIX = '.auditlog-tmp';

const DEFAULT_RETRY: RetryConfig = { max_attempts: 3, base_delay_ms: 50, max_delay_ms: 1_000 };

export interface LocalObjectStoreConfig {
  path: string;
  retry?: RetryConfig;
}

export type LocalObjectStoreOptions = RetryHooks;

type Operation = 'put' | 'get' | 'head' | 'delete' | 'list' | 'check';

export function isLocalTempFileName(name: string): boolean {
  return name.endsWith(LOCAL_TEMP_SUFFIX);
}

export class LocalObjectStore implements ObjectStore {
  readonly description: string;
  private readonly root: string;
  private readonly retry: RetryConfig;
  /** The one probe of hard links in the root (see conditionalCreate). */
  private linkProbe: Promise<ConditionalCreateSupport> | undefined;

  constructor(
    config: LocalObjectStoreConfig,
    private readonly hooks: LocalObjectStoreOptions = {},
  ) {
    this.root = path.resolve(config.path);
    this.retry = config.retry ?? DEFAULT_RETRY;
    this.description = this.root.endsWith(path.sep) ? this.root : `${this.root}${path.sep}`;
  }

  async put(key: string, body: Buffer, options: PutOptions = {}): Promise<PutResult> {
    const target = this.resolveKey(key, 'put');
    if (options.sha256Hex !== undefined) verifyPutBody(body, options.sha256Hex, target);
    const directory = path.dirname(target);
    return this.run('put', target, async () => {
      await makeDirectoryDurable(directory);
      if (options.ifAbsent !== true) {
        await writeFileAtomically(target, body);
        return {};
      }
      return (await createFileAtomically(target, body)) ? {} : { alreadyExists: true };
    });
  }

  /**
   * Create-only writes use link(2), which never replaces a name; but not every mounted file system
   * has hard links (vfat/exFAT, some FUSE and SMB mounts answer EPERM or ENOTSUP). Probed once,
   * in the directory itself: without them every put stays a rename, checked by HEAD first as
   * before, instead of every create-only put failing.
   */
  conditionalCreate(): Promise<ConditionalCreateSupport> {
    this.linkProbe ??= probeHardLinks(this.root);
    return this.linkProbe;
  }

  async get(key: string): Promise<Buffer | undefined> {
    const target = this.resolveKey(key, 'get');
    return this.run('get', target, async () => {
      try {
        return await readFile(target);
      } catch (error) {
        // A directory at the key is a key prefix, not an object: as on S3, nothing is there.
        if (isMissing(error) || hasCode(error, 'EISDIR')) return undefined;
        throw error;
      }
    });
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    const target = this.resolveKey(key, 'head');
    return this.run('head', target, async () => {
      try {
        const stats = await stat(target);
        return stats.isFile() ? { key, size: stats.size } : undefined;
      } catch (error) {
        if (isMissing(error)) return undefined;
        throw error;
      }
    });
  }

  async delete(key: string): Promise<void> {
    const target = this.resolveKey(key, 'delete');
    await this.run('delete', target, async () => {
      try {
        await unlink(target);
      } catch (error) {
        if (isMissing(error) || hasCode(error, 'EISDIR')) return;
        throw error;
      }
      await fsyncDirectory(path.dirname(target));
    });
  }

  /** A file system has no bulk delete: one unlink per key, each failure reported, the rest still deleted. */
  async deleteMany(keys: readonly string[]): Promise<DeleteManyResult> {
    // Every key is checked before anything is deleted, as the S3 store does.
    for (const key of keys) this.resolveKey(key, 'delete');
    const failed: DeleteFailure[] = [];
    for (const key of keys) {
      try {
        await this.delete(key);
      } catch (error) {
        failed.push({ key, reason: describeError(error) });
      }
    }
    return { failed };
  }

  async *list(prefix: string, options: ListOptions = {}): AsyncIterable<ObjectInfo> {
    validateKeyPrefix(prefix, 'local list');
    const slash = prefix.lastIndexOf('/');
    const directoryKey = slash === -1 ? '' : prefix.slice(0, slash);
    const namePrefix = prefix.slice(slash + 1);
    const directory = directoryKey === '' ? this.root : path.join(this.root, ...directoryKey.split('/'));
    const after = options.startAfter === undefined ? undefined : Buffer.from(options.startAfter, 'utf8');
    // Only when the start directory cannot be reached: stat follows every link on the way, so a
    // directory it finds has no broken link above it.
    if (directoryKey !== '' && (await stat(directory).catch(() => undefined)) === undefined) await this.refuseBrokenLinkOnPath(directoryKey);
    yield* this.walk(directory, directoryKey === '' ? '' : `${directoryKey}/`, namePrefix, after, new Set());
  }

  async check(options: CheckOptions = {}): Promise<void> {
    if (options.writeNothing === true || (options.createNothing === true && !(await isExistingDirectory(this.root).catch(() => true)))) {
      await this.run('check', this.root, () => checkWritableWithoutWriting(this.root));
      return;
    }
    await this.run('check', this.root, async () => {
      await makeDirectoryDurable(this.root);
      const probe = path.join(this.root, `.check.${process.pid}-${randomBytes(6).toString('hex')}${LOCAL_TEMP_SUFFIX}`);
      const handle = await open(probe, 'wx', 0o600);
      try {
        await handle.writeFile('auditlog-manager write check\n');
        await handle.sync();
      } finally {
        await handle.close();
        await rm(probe, { force: true });
      }
    });
  }

  /**
   * Removes temp files of atomic writes that a crash interrupted (`.<name>.<pid>-<random>.auditlog-tmp`)
   * last written before `olderThan`. A put in progress keeps writing its temp file, so the age
   * protects it; the name suffix is reserved, so no object is ever one of them.
   */
  async cleanupInterrupted(options: CleanupOptions): Promise<CleanupReport> {
    const items: CleanupItem[] = [];
    let kept = 0;
    const seen = new Set<string>([await realpath(this.root).catch(() => this.root)]);
    const visit = async (directory: string, keyBase: string): Promise<void> => {
      const entries = await this.readDirectory(directory);
      for (const entry of entries) {
        const child = path.join(directory, entry.name);
        // Into linked directories too, as list goes (a link that leads nowhere has no temp files;
        // a loop is walked once: `seen` holds the real paths visited).
        const linkedDirectory = entry.isSymbolicLink() && (await stat(child).catch(() => undefined))?.isDirectory() === true;
        if (entry.isDirectory() || linkedDirectory) {
          const real = await realpath(child).catch(() => undefined);
          if (real === undefined || seen.has(real)) continue;
          seen.add(real);
          await visit(child, `${keyBase}${entry.name}/`);
          continue;
        }
        if (!entry.isFile() || !isLocalTempFileName(entry.name)) continue;
        const stats = await lstat(child).catch(() => undefined);
        if (stats === undefined) continue;
        if (stats.mtime.getTime() >= options.olderThan.getTime()) {
          kept += 1;
          continue;
        }
        const item: CleanupItem = { kind: 'temp-file', key: `${keyBase}${entry.name}`, since: stats.mtime.toISOString(), action: options.dryRun ? 'would-delete' : 'deleted' };
        if (!options.dryRun) {
          try {
            await this.run('delete', child, () => rm(child, { force: true }));
          } catch (error) {
            item.action = 'failed';
            item.error = error instanceof Error ? error.message : 'unknown error';
          }
        }
        items.push(item);
      }
    };
    await visit(this.root, '');
    return { items, kept };
  }

  /** A directory's entries; a directory that does not exist is empty (nothing was written there yet). */
  private readDirectory(directory: string): Promise<Dirent[]> {
    return this.run('list', directory, async () => {
      try {
        return await readdir(directory, { withFileTypes: true });
      } catch (error) {
        if (isMissing(error)) return [] as Dirent[];
        throw error;
      }
    });
  }

  /**
   * Yields files below `directory` in S3 key order (UTF-8 bytes). Within one directory a
   * subdirectory sorts as `name/`, which makes the depth-first walk globally ordered without
   * holding every key in memory.
   *
   * With `after` (startAfter, as bytes) only keys sorting after it are yielded, and a subtree whose
   * keys all sort at or before it is never read: a directory `d` holds exactly the keys starting
   * with `d/`, so it is skipped unless `after` sorts before `d/` or starts with it. An audit trail
   * opened from today's directory then reads today's directory, not every day before it.
   */
  private async *walk(directory: string, keyBase: string, namePrefix: string, after: Buffer | undefined, ancestors: ReadonlySet<string>): AsyncGenerator<ObjectInfo> {
    const entries = await this.readDirectory(directory);
    const candidates: { name: string; isDirectory: boolean; linked: boolean; sortKey: Buffer }[] = [];
    for (const entry of entries) {
      if (!entry.name.startsWith(namePrefix) || isLocalTempFileName(entry.name) || entry.name.includes('\\')) continue;
      // put/get/head go through symbolic links (path.join, stat, readFile), so list must too: a
      // day directory moved to another volume and linked back was written to, verified and its
      // rows deleted, yet validate and restore never listed it ("OK", nothing to restore; found by probing).
      const kind = entry.isSymbolicLink() ? await this.linkKind(path.join(directory, entry.name), `${keyBase}${entry.name}`) : entry.isDirectory() ? 'directory' : entry.isFile() ? 'file' : undefined;
      if (kind === undefined) continue;
      candidates.push({ name: entry.name, isDirectory: kind === 'directory', linked: entry.isSymbolicLink(), sortKey: Buffer.from(`${keyBase}${entry.name}${kind === 'directory' ? '/' : ''}`, 'utf8') });
    }
    candidates.sort((a, b) => Buffer.compare(a.sortKey, b.sortKey));
    for (const { name, isDirectory, linked, sortKey } of candidates) {
      const child = path.join(directory, name);
      if (isDirectory) {
        // `ancestors`: the real paths of the directories this walk is inside; a link back up to
        // one of them would be walked for ever.
        const real = await this.run('list', child, () => realpath(child).catch((error: unknown) => (isMissing(error) ? undefined : Promise.reject(error))));
        if (real === undefined) continue;
        if (ancestors.has(real)) {
          throw new AuditlogError('STORAGE_IO', `local list: ${keyBase}${name} under ${this.description} is a symbolic link to a directory that contains it (${real}); remove the link`, {
            details: { operation: 'list', key: `${keyBase}${name}`, path: child, target: real },
          });
        }
        if (after === undefined || Buffer.compare(sortKey, after) > 0) {
          // Every key below sorts after `d/`, hence after `after`: no more filtering needed.
          yield* this.walk(child, `${keyBase}${name}/`, '', undefined, new Set(ancestors).add(real));
        } else if (after.subarray(0, sortKey.length).equals(sortKey)) {
          yield* this.walk(child, `${keyBase}${name}/`, '', after, new Set(ancestors).add(real));
        }
        continue;
      }
      if (after !== undefined && Buffer.compare(sortKey, after) <= 0) continue;
      const stats = await this.run('list', child, async () => {
        try {
          // A linked file's size is its target's (what get reads), not the link's.
          return await (linked ? stat(child) : lstat(child));
        } catch (error) {
          // Deleted between readdir and lstat: it is simply no longer listed.
          if (isMissing(error)) return undefined;
          throw error;
        }
      });
      if (stats?.isFile() === true) yield { key: `${keyBase}${name}`, size: stats.size };
    }
  }

  /**
   * A listing that starts at or below a symbolic link whose target is gone found no directory and
   * listed nothing: a closed-range validate said OK with 0 objects, a restore found nothing (found
   * in review). Each component of the start directory that is a link must lead somewhere; one
   * that is simply missing means nothing was written there yet.
   */
  private async refuseBrokenLinkOnPath(directoryKey: string): Promise<void> {
    let current = this.root;
    let key = '';
    for (const part of directoryKey.split('/')) {
      current = path.join(current, part);
      key = key === '' ? part : `${key}/${part}`;
      const here = current;
      const stats = await this.run('list', here, () => lstat(here).catch((error: unknown) => (isMissing(error) ? undefined : Promise.reject(error))));
      if (stats === undefined) return;
      if (stats.isSymbolicLink() && (await this.linkKind(here, key)) !== 'directory') return;
    }
  }

  /**
   * What a symbolic link in the archive leads to. One whose target is gone (a volume not mounted,
   * a directory deleted) fails the listing: skipped, the objects behind it went unseen and
   * validate reported the archive clean.
   */
  private async linkKind(link: string, key: string): Promise<'file' | 'directory' | undefined> {
    const target = await this.run('list', link, async () => {
      try {
        return await stat(link);
      } catch (error) {
        if (!isMissing(error)) throw error;
        // The link itself deleted since readdir: no longer listed, like any other entry.
        return (await lstat(link).catch(() => undefined)) === undefined ? undefined : ('broken' as const);
      }
    });
    if (target === 'broken') {
      const points = await readlink(link).catch(() => '?');
      throw new AuditlogError('STORAGE_IO', `local list: ${key} under ${this.description} is a symbolic link to ${points}, which does not exist; mount or restore what it points to, or remove the link (the objects behind it cannot be read)`, {
        details: { operation: 'list', key, path: link, target: points },
      });
    }
    if (target === undefined) return undefined;
    return target.isDirectory() ? 'directory' : target.isFile() ? 'file' : undefined;
  }

  private resolveKey(key: string, operation: Operation): string {
    validateObjectKey(key, `local ${operation}`);
    const segments = key.split('/');
    if (segments.some(isLocalTempFileName)) {
      throw new AuditlogError('STORAGE_IO', `local ${operation} refused key ${JSON.stringify(key)}: names ending in "${LOCAL_TEMP_SUFFIX}" are reserved for temp files; choose another key`, {
        details: { operation, key },
      });
    }
    const target = path.join(this.root, ...segments);
    // Defence in depth: validation already rules out '..', but the resolved path is what counts.
    if (!target.startsWith(this.description)) {
      throw new AuditlogError('STORAGE_IO', `local ${operation} refused key ${JSON.stringify(key)}: it resolves outside ${this.description}`, {
        details: { operation, key },
      });
    }
    return target;
  }

  private async run<T>(operation: Operation, target: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await withRetry(fn, { policy: classifyFsError, retry: this.retry, ...this.hooks });
    } catch (error) {
      if (error instanceof RetryGaveUpError) throw this.translate(operation, target, error);
      throw error;
    }
  }

  private translate(operation: Operation, target: string, failure: RetryGaveUpError): AuditlogError {
    const { classification, attempts } = failure;
    const cause = failure.cause;
    // transient: a failure that could have healed by itself; the circuit breaker counts these.
    const details = { operation, path: target, root: this.root, reason: classification.reason, attempts, transient: classification.retryable };
    const what = `local ${operation} ${target}`;
    const after =
      failure.excludedClass !== undefined
        ? ` (not retried: \`${failure.excludedClass}\` is not in local.retry.retryable_errors)`
        : attempts > 1
          ? ` after ${attempts} attempts`
          : '';
    return new AuditlogError(classification.code, `${what} failed${after} (${describeFsCause(cause, classification)}): ${adviseLocal(classification, this.root)}`, {
      details,
      cause,
    });
  }
}

function adviseLocal(classification: ErrorClassification, root: string): string {
  switch (classification.errorCode) {
    case 'EACCES':
    case 'EPERM':
      return `make ${root} readable and writable by the user running auditlog, or point local.path elsewhere`;
    case 'EROFS':
      return `${root} is on a read-only file system; point local.path at a writable directory`;
    case 'ENOSPC':
    case 'EDQUOT':
      return `the file system holding ${root} is full; free space or point local.path elsewhere`;
    case 'ENOTDIR':
    case 'EEXIST':
      return `a file stands where a directory is needed on the path to or under ${root}; move it away or point local.path elsewhere`;
    case 'ENOENT':
      return `a directory on the path to ${root} is missing or cannot hold new entries; point local.path at a writable directory`;
    case 'EISDIR':
      return `a directory stands where the object should be; move it away`;
    default:
      return classification.retryable ? 'the file system kept failing; check its health and retry' : `check ${root} and the file system`;
  }
}

function describeFsCause(cause: unknown, classification: ErrorClassification): string {
  if (cause instanceof Error && classification.errorCode !== undefined) {
    // Node's fs messages are "CODE: description, syscall 'path'": keep the description only.
    const description = /^[A-Z]+: ([^,]+)/.exec(cause.message)?.[1];
    return description === undefined ? classification.reason : `${classification.reason}: ${description}`;
  }
  return classification.reason;
}

async function writeFileAtomically(target: string, body: Buffer): Promise<void> {
  const temp = await writeDurableTemp(target, body);
  try {
    await rename(temp, target);
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  // The rename is durable only once the directory entry is on disk.
  await fsyncDirectory(path.dirname(target));
}

/**
 * Whether link(2) works as a no-replace create in `root`: a temp file linked to a fresh name, then
 * linked again onto it, which must fail with EEXIST. Never throws; `linkFile` is replaceable so
 * the answer for a file system without hard links can be tested.
 */
export async function probeHardLinks(root: string, linkFile: (from: string, to: string) => Promise<void> = link): Promise<ConditionalCreateSupport> {
  const base = path.join(root, `.auditlog-link-probe.${process.pid}-${randomBytes(6).toString('hex')}`);
  const temp = `${base}${LOCAL_TEMP_SUFFIX}`;
  const linked = `${base}.linked${LOCAL_TEMP_SUFFIX}`;
  try {
    await (await open(temp, 'wx', 0o644)).close();
    await linkFile(temp, linked);
    try {
      await linkFile(temp, linked);
      return { supported: false, reason: `local directory ${root}: link(2) replaced an existing name` };
    } catch (error) {
      if (hasCode(error, 'EEXIST')) return { supported: true, reason: 'local directory: create-only writes use link(2), which never replaces a file' };
      throw error;
    }
  } catch (error) {
    return { supported: false, reason: `local directory ${root} has no usable hard links (${describeError(error)}): each batch checks its key before writing, and writes by rename` };
  } finally {
    await rm(temp, { force: true });
    await rm(linked, { force: true });
  }
}

/**
 * Like writeFileAtomically, but never replaces an existing file: false (and nothing written, no
 * temp file left) when one is at `target`. A crash between link and unlink leaves the object
 * complete and a temp file that cleanupInterrupted removes.
 */
async function createFileAtomically(target: string, body: Buffer): Promise<boolean> {
  const temp = await writeDurableTemp(target, body);
  let created = true;
  try {
    await link(temp, target);
  } catch (error) {
    if (!hasCode(error, 'EEXIST')) throw error;
    created = false;
  } finally {
    await rm(temp, { force: true });
  }
  await fsyncDirectory(path.dirname(target));
  return created;
}

/** The bytes in a fsynced temp file beside `target` (removed again if writing fails). */
async function writeDurableTemp(target: string, body: Buffer): Promise<string> {
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}-${randomBytes(6).toString('hex')}${LOCAL_TEMP_SUFFIX}`);
  try {
    const handle = await open(temp, 'wx', 0o644);
    try {
      await handle.writeFile(body);
      await handle.sync();
    } finally {
      await handle.close();
    }
  } catch (error) {
    await rm(temp, { force: true });
    throw error;
  }
  return temp;
}

/**
 * mkdir -p that also fsyncs the parent of every directory it creates, so new paths survive a
 * crash. Hand-rolled: `mkdir({ recursive: true })` never returns on file systems such as /proc.
 */
async function makeDirectoryDurable(directory: string): Promise<void> {
  const missing: string[] = [];
  for (let current = directory; !(await isExistingDirectory(current)); current = path.dirname(current)) {
    missing.push(current);
    if (path.dirname(current) === current) break;
  }
  for (const dir of missing.reverse()) {
    try {
      await mkdir(dir);
    } catch (error) {
      // Another put may have created it meanwhile; anything else at that path fails the next step.
      if (!hasCode(error, 'EEXIST')) throw error;
    }
    await fsyncDirectory(path.dirname(dir));
  }
}

/**
 * What makeDirectoryDurable and a put need, proven without creating or writing anything: the
 * directory, or the nearest parent it would be created in, is a directory this process may write
 * to. A file on the way fails as mkdir would (ENOTDIR).
 */
async function checkWritableWithoutWriting(directory: string): Promise<void> {
  let current = directory;
  while (!(await isExistingDirectory(current)) && path.dirname(current) !== current) current = path.dirname(current);
  await access(current, constants.W_OK | constants.X_OK);
}

async function isExistingDirectory(directory: string): Promise<boolean> {
  let stats;
  try {
    stats = await stat(directory);
  } catch (error) {
    if (hasCode(error, 'ENOENT')) return false;
    throw error;
  }
  if (stats.isDirectory()) return true;
  throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${directory}'`), { code: 'ENOTDIR' });
}

async function fsyncDirectory(directory: string): Promise<void> {
  const handle = await open(directory, 'r');
  try {
    await handle.sync();
  } catch (error) {
    // Some file systems (and non-Linux platforms) cannot fsync a directory; the data file itself was synced.
    if (!hasCode(error, 'EINVAL') && !hasCode(error, 'EISDIR') && !hasCode(error, 'EPERM')) throw error;
  } finally {
    await handle.close();
  }
}

/** ENOTDIR: a file stands where the key needs a directory, so the key cannot exist either. */
function isMissing(error: unknown): boolean {
  return hasCode(error, 'ENOENT') || hasCode(error, 'ENOTDIR');
}

function hasCode(error: unknown, code: string): boolean {
  return typeof error === 'object' && error !== null && (error as { code?: unknown }).code === code;
}
