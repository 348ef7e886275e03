/**
 * Key rules shared by every store, so a key that works on the local backend works on S3 and the
 * other way round. Keys are '/'-separated and relative to the store root; nothing a key says
 * may reach outside that root (a local path, another S3 prefix).
 */
import { AuditlogError } from '../core/errors.js';

/** S3's limit on the UTF-8 length of a whole key (including the configured prefix). */
export const MAX_KEY_BYTES = 1024;

/** Throws STORAGE_IO naming the key and the rule when `key` is not a valid object key. */
export function validateObjectKey(key: string, operation: string): void {
  const problem = findKeyProblem(key, false);
  if (problem !== undefined) throw invalidKey(operation, key, problem);
}

/** Like {@link validateObjectKey} for a list prefix: '' lists everything, the last segment may be partial. */
export function validateKeyPrefix(prefix: string, operation: string): void {
  if (prefix === '') return;
  const problem = findKeyProblem(prefix, true);
  if (problem !== undefined) throw invalidKey(operation, prefix, problem);
}

/**
 * What is wrong with a configured key prefix (`s3.prefix`, ending in "/"), or undefined: every key
 * the archiver writes starts with it, so a prefix these rules refuse would pass the configuration
 * and the connection checks and then fail every storage request of every run (found by probing).
 */
export function findPrefixSettingProblem(prefix: string): string | undefined {
  if (prefix === '' || !prefix.endsWith('/')) return undefined;
  if (prefix === '/') return 'it is only "/" (leave the prefix empty to write at the bucket root)';
  return findKeyProblem(prefix.slice(0, -1), false);
}

function findKeyProblem(key: string, isPrefix: boolean): string | undefined {
  if (typeof key !== 'string' || key === '') return 'it is empty';
  if (Buffer.byteLength(key, 'utf8') > MAX_KEY_BYTES) return `it is longer than ${MAX_KEY_BYTES} bytes`;
  if (key.startsWith('/')) return 'it starts with "/" (keys are relative to the store root)';
  if (key.includes('\\')) return 'it contains a backslash';
  if (key.includes('\0')) return 'it contains a NUL character';
  // A prefix may stop mid-segment ('db/public.t/year=20'); only its complete segments are checked.
  const segments = key.split('/');
  const complete = isPrefix ? segments.slice(0, -1) : segments;
  for (const segment of complete) {
    if (segment === '') return 'it has an empty path segment ("//" or a trailing "/")';
    if (segment === '.' || segment === '..') return `it has a "${segment}" path segment`;
  }
  return undefined;
}

function invalidKey(operation: string, key: string, problem: string): AuditlogError {
  return new AuditlogError('STORAGE_IO', `${operation} refused key ${JSON.stringify(key)}: ${problem}; use a relative key like "db/schema.table/year=2024/file.jsonl.gz"`, {
    details: { operation, key, problem },
  });
}
