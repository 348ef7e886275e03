/**
 * The append-only audit trail in the archive's storage: one new object per event, never
 * overwritten (each key is new; a key that exists already is an error, never replaced), so the
 * bucket can sit under S3 Object Lock (compliance mode) without the archiver ever needing to
 * change an object. Appends of one process go one at a time in the order they were asked for.
 *
 * Key order is write order, whatever the clock does: the tail is the greatest key of the whole
 * trail (found from the clock's day onwards, so a clock behind the newest record still finds it),
 * and a record is never named before the tail (a clock behind it names the record just after it).
 * `audit verify` checks each link against the records sorting before it; trails written before
 * this rule (where a clock step back named records before their predecessor) show that spot as a
 * broken link (docs/compliance.md, "Clocks").
 */
import { mapOrdered } from '../core/map-ordered.js';
import { SerialQueue } from '../core/serial-queue.js';
import { setTimeout as delay } from 'node:timers/promises';
import { AuditlogError, describeError, isAuditlogError } from '../core/errors.js';
import { CIRCUIT_OPEN_CODE } from '../storage/circuit-breaker-object-store.js';
import type { ObjectStore } from '../storage/object-store.js';
import { AUDIT_PREFIX, auditKeyTime, auditRecordKey, auditSearchStarts, buildAuditRecord, serializeAuditRecord, sha256Hex, type AuditEntry, type AuditRecord } from './audit-record.js';
import type { StoredAuditRecord } from './verify-audit-chain.js';

export interface AuditTrail {
  readonly description: string;
  /** Finds the newest record (the chain's tail) and proves the trail is reachable. Call before any work. */
  open(): Promise<void>;
  append(entry: AuditEntry): Promise<AuditRecord>;
  /** Waits for appends already asked for. */
  flush(): Promise<void>;
}

/**
 * While the storage circuit's one trial request is in flight, every other request is refused at
 * once. After an outage the trial is usually the run's storage check, and the run's ARCHIVE_START
 * went out beside it: refused, the record was lost although the storage was back (found by
 * probing the daemon). An append refused for that reason waits for the trial's verdict instead:
 * when the trial fails, the circuit is open again and the append fails as it would have.
 */
const TRIAL_WAIT_MS = 120_000;
const TRIAL_POLL_MS = 100;

function isRefusedForTrial(error: unknown): boolean {
  return isAuditlogError(error) && error.code === CIRCUIT_OPEN_CODE && error.details.state === 'HALF_OPEN';
}

export class StorageAuditTrail implements AuditTrail {
  readonly description: string;
  /** The newest record (greatest key) and the hash of its bytes; null for an empty trail; undefined before open(). */
  private tail: { key: string; sha256: string } | null | undefined;
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
    if (this.tail !== undefined) return;
    try {
      this.tail = await this.findTail();
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
    const record = buildAuditRecord(entry, this.now(), this.operator, this.tail?.sha256 ?? null);
    const key = this.keyAfterTail(record, ++this.seq);
    const body = serializeAuditRecord(record);
    const waitUntil = Date.now() + TRIAL_WAIT_MS;
    for (;;) {
      try {
        // Keys are unique per run and sequence; the HEAD makes "never overwritten" hold even for a
        // clock or run id reused by mistake, on stores without conditional writes.
        if ((await this.store.head(key)) !== undefined) throw new Error(`${key} exists already`);
        await this.store.put(key, body, { sha256Hex: sha256Hex(body), contentType: 'application/json' });
        break;
      } catch (error) {
        if (isRefusedForTrial(error) && Date.now() < waitUntil) {
          await delay(TRIAL_POLL_MS);
          continue;
        }
        throw new AuditlogError('AUDIT_WRITE_FAILED', `audit record ${entry.event} could not be written to ${this.description}: ${describeError(error)}`, { cause: error });
      }
    }
    this.tail = { key, sha256: sha256Hex(body) };
    return record;
  }

  /**
   * The record's key, never sorting before the tail's: when the clock is behind the newest record
   * (stepped back, or another host's clock was ahead), the key takes the tail's millisecond, or
   * the next one, instead. The record itself keeps the time the clock gave (`at`).
   */
  private keyAfterTail(record: AuditRecord, seq: number): string {
    const key = auditRecordKey(record, seq);
    const tailKey = this.tail?.key;
    if (tailKey === undefined || key > tailKey) return key;
    const tailMs = auditKeyTime(tailKey);
    // A tail not named by auditRecordKey (put there by hand): nothing to name after.
    if (tailMs === undefined) return key;
    // The tail's millisecond sorts after it when run id and sequence do; the next one always does.
    const same = auditRecordKey({ ...record, at: new Date(tailMs).toISOString() }, seq);
    return same > tailKey ? same : auditRecordKey({ ...record, at: new Date(tailMs + 1).toISOString() }, seq);
  }

  /**
   * The newest record: the greatest key of the trail. It is looked for from the start of the
   * clock's day onwards (a clock behind the tail still reaches it: every later day is in the
   * listing), then from 1, 2, 4, … days before (auditSearchStarts), and everything last. Listings
   * come in key order and a store skips what sorts before startAfter (S3 StartAfter; the local
   * store skips whole directories), so an hourly run lists about a day of records.
   */
  private async findTail(): Promise<{ key: string; sha256: string } | null> {
    for (const startAfter of auditSearchStarts(this.now())) {
      let last: string | undefined;
      for await (const info of this.store.list(AUDIT_PREFIX, startAfter === undefined ? undefined : { startAfter })) {
        if (!info.key.endsWith('.json') || (startAfter !== undefined && info.key <= startAfter)) continue;
        if (last === undefined || info.key > last) last = info.key;
      }
      if (last === undefined) continue;
      const body = await this.store.get(last);
      if (body === undefined) throw new Error(`${last} vanished while reading the trail`);
      return { key: last, sha256: sha256Hex(body) };
    }
    return null;
  }
}

/** Bodies fetched at once while streaming the trail: enough to hide a GET's latency, few enough to bound memory. */
export const AUDIT_READ_CONCURRENCY = 16;

/**
 * Every record of the trail in key order (write order), for `audit list` and `audit verify`: the
 * listing is streamed and bodies are fetched `concurrency` at a time, so memory is bounded by that
 * many bodies whatever the length of the trail. A record deleted between list and get is skipped.
 */
export async function* streamAuditRecords(store: ObjectStore, prefix: string, concurrency = AUDIT_READ_CONCURRENCY): AsyncGenerator<StoredAuditRecord> {
  const fetched = mapOrdered(store.list(prefix), concurrency, async (info) => ({ key: info.key, body: await store.get(info.key) }));
  for await (const { key, body } of fetched) if (body !== undefined) yield { key, body };
}

/** The whole trail at once (tests, small trails); list and verify stream it instead. */
export async function readAuditRecords(store: ObjectStore, prefix: string): Promise<StoredAuditRecord[]> {
  const out: StoredAuditRecord[] = [];
  for await (const item of streamAuditRecords(store, prefix)) out.push(item);
  return out;
}
