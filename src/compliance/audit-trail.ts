/**
 * The append-only audit trail in the archive's storage: one new object per event, never
 * overwritten (each key is new; a key that exists already is an error, never replaced), so the
 * bucket can sit under S3 Object Lock (compliance mode) without the archiver ever needing to
 * change an object. Appends of one process go one at a time in the order they were asked for.
 */
import { SerialQueue } from '../core/serial-queue.js';
import { AuditlogError, describeError } from '../core/errors.js';
import type { ObjectStore } from '../storage/object-store.js';
import { auditRecordKey, auditSearchPrefixes, buildAuditRecord, serializeAuditRecord, sha256Hex, type AuditEntry, type AuditRecord } from './audit-record.js';

export interface AuditTrail {
  readonly description: string;
  /** Finds the newest record (the chain's tail) and proves the trail is reachable. Call before any work. */
  open(): Promise<void>;
  append(entry: AuditEntry): Promise<AuditRecord>;
  /** Waits for appends already asked for. */
  flush(): Promise<void>;
}

export class StorageAuditTrail implements AuditTrail {
  readonly description: string;
  private lastSha256: string | null | undefined;
  private seq = 0;
  private readonly queue = new SerialQueue();

  constructor(
    private readonly store: ObjectStore,
    private readonly operator: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.description = `${store.description} (_auditlog/audit/)`;
  }

  async open(): Promise<void> {
    if (this.lastSha256 !== undefined) return;
    try {
      this.lastSha256 = await this.findTail();
    } catch (error) {
      // Storage errors keep their own code (STORAGE_UNREACHABLE, STORAGE_ACCESS...): scripts match on them.
      if (error instanceof AuditlogError) throw error;
      throw new AuditlogError('AUDIT_WRITE_FAILED', `audit trail in ${this.description} could not be read (${describeError(error)}): nothing is archived without it; check storage access`, { cause: error });
    }
  }

  append(entry: AuditEntry): Promise<AuditRecord> {
    return this.queue.run(() => this.write(entry));
  }

  flush(): Promise<void> {
    return this.queue.drain();
  }

  private async write(entry: AuditEntry): Promise<AuditRecord> {
    await this.open();
    const record = buildAuditRecord(entry, this.now(), this.operator, this.lastSha256 ?? null);
    const key = auditRecordKey(record, ++this.seq);
    const body = serializeAuditRecord(record);
    try {
      // Keys are unique per run and sequence; the HEAD makes "never overwritten" hold even for a
      // clock or run id reused by mistake, on stores without conditional writes.
      if ((await this.store.head(key)) !== undefined) throw new Error(`${key} exists already`);
      await this.store.put(key, body, { sha256Hex: sha256Hex(body), contentType: 'application/json' });
    } catch (error) {
      throw new AuditlogError('AUDIT_WRITE_FAILED', `audit record ${entry.event} could not be written to ${this.description}: ${describeError(error)}`, { cause: error });
    }
    this.lastSha256 = sha256Hex(body);
    return record;
  }

  /** The newest record's hash: the latest day first, widening only when it is empty. */
  private async findTail(): Promise<string | null> {
    for (const prefix of auditSearchPrefixes(this.now())) {
      let last: string | undefined;
      for await (const info of this.store.list(prefix)) if (info.key.endsWith('.json')) last = info.key;
      if (last === undefined) continue;
      const body = await this.store.get(last);
      if (body === undefined) throw new Error(`${last} vanished while reading the trail`);
      return sha256Hex(body);
    }
    return null;
  }
}

/** Reads every record of the trail (for `audit list` and `audit verify`), in key order. */
export async function readAuditRecords(store: ObjectStore, prefix: string): Promise<{ key: string; body: Buffer }[]> {
  const out: { key: string; body: Buffer }[] = [];
  for await (const info of store.list(prefix)) {
    const body = await store.get(info.key);
    if (body !== undefined) out.push({ key: info.key, body });
  }
  return out;
}
