/**
 * A long audit trail written straight into a local store's directory (no fsync per record: a
 * trail of thousands of records in a second), with valid chaining built by the same helpers the
 * trail uses, and defects planted where a test asks for them.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { auditRecordKey, buildAuditRecord, serializeAuditRecord, sha256Hex, type AuditEntry } from '../../src/compliance/audit-record.js';

export interface PlannedRecord {
  entry: AuditEntry;
  /** Link to the record this many places back instead of the one just before (1): 2 makes a fork, 0 a second root. */
  linkBack?: number;
}

export interface WrittenRecord {
  key: string;
  body: Buffer;
}

/** Writes `planned` in order, a record every `stepMs` from `from`; returns keys and bodies in key order. */
export async function writeAuditTrail(root: string, planned: readonly PlannedRecord[], from = Date.parse('2026-03-01T00:00:00.000Z'), stepMs = 7 * 60_000): Promise<WrittenRecord[]> {
  const written: WrittenRecord[] = [];
  const dirs = new Set<string>();
  for (const [i, p] of planned.entries()) {
    const back = p.linkBack ?? 1;
    const prev = back > 0 && written.length >= back ? sha256Hex(written[written.length - back]!.body) : null;
    const record = buildAuditRecord(p.entry, new Date(from + i * stepMs), 'scale-test', prev);
    const key = auditRecordKey(record, i + 1);
    const body = serializeAuditRecord(record);
    const file = path.join(root, ...key.split('/'));
    const dir = path.dirname(file);
    if (!dirs.has(dir)) await mkdir(dir, { recursive: true });
    dirs.add(dir);
    await writeFile(file, body);
    written.push({ key, body });
  }
  return written;
}

export const keyPath = (root: string, key: string): string => path.join(root, ...key.split('/'));

export async function replaceBody(root: string, key: string, body: Buffer | string): Promise<void> {
  await writeFile(keyPath(root, key), body);
}

export async function removeRecord(root: string, key: string): Promise<void> {
  await rm(keyPath(root, key));
}
