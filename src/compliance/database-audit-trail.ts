/**
 * The audit trail as rows of a table (compliance.audit.backend: database). Same records and chain
 * as the storage trail; appends are serialized by the database (see insertAuditRow), so
 * concurrent runs never fork this chain.
 */
import { SerialQueue } from '../core/serial-queue.js';
import type pg from 'pg';
import { AuditlogError, describeError, sqlState } from '../core/errors.js';
import { auditTableExists, buildCreateAuditTableSql, insertAuditRow, selectAuditRowPage } from '../db/audit-queries.js';
import { buildAuditRecord, serializeAuditRecord, sha256Hex, type AuditEntry, type AuditRecord } from './audit-record.js';
import type { AuditTrail } from './audit-trail.js';
import type { StoredAuditRecord } from './verify-audit-chain.js';

export class DatabaseAuditTrail implements AuditTrail {
  readonly description: string;
  private readonly queue = new SerialQueue();

  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
    private readonly table: string,
    private readonly operator: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.description = `table ${schema}.${table}`;
  }

  async open(): Promise<void> {
    try {
      if (!(await auditTableExists(this.pool, this.schema, this.table))) await this.pool.query(buildCreateAuditTableSql(this.schema, this.table));
    } catch (error) {
      throw new AuditlogError(
        'AUDIT_WRITE_FAILED',
        `audit ${this.description} is missing and could not be created (${describeError(error)}): create it as in docs/compliance.md and GRANT SELECT, INSERT on it to the archiver`,
        { cause: error },
      );
    }
  }

  append(entry: AuditEntry): Promise<AuditRecord> {
    return this.queue.run(() => this.write(entry));
  }

  flush(): Promise<void> {
    return this.queue.drain();
  }

  private async write(entry: AuditEntry): Promise<AuditRecord> {
    let written: AuditRecord | undefined;
    try {
      await insertAuditRow(this.pool, this.schema, this.table, (prev) => {
        const record = buildAuditRecord(entry, this.now(), this.operator, prev === null ? null : sha256Hex(Buffer.from(prev, 'utf8')));
        const body = serializeAuditRecord(record);
        written = record;
        return { event: record.event, runId: record.run_id, database: record.database, schema: record.schema, table: record.table, record: body.toString('utf8'), sha256: sha256Hex(body) };
      });
    } catch (error) {
      throw new AuditlogError('AUDIT_WRITE_FAILED', `audit record ${entry.event} could not be written to ${this.description}: ${describeError(error)}`, { cause: error });
    }
    return written!;
  }
}

/** Every record of the audit table, named `<schema>.<table>#<id>`, in id order, a page at a time (list and verify). */
export async function* streamDatabaseAuditRecords(pool: pg.Pool, schema: string, table: string, pageSize = 1000): AsyncGenerator<StoredAuditRecord> {
  let after: string | undefined;
  for (;;) {
    const rows = await selectAuditRowPage(pool, schema, table, after, pageSize).catch((error: unknown) => {
      throw auditReadError(error, schema, table);
    });
    // Ids are zero-padded so the verifier's key order is id order.
    // The columns go along with the record: the verifier, which parses and hashes it anyway, compares them.
    for (const { id, record, ...copies } of rows) yield { key: `${schema}.${table}#${id.padStart(19, '0')}`, body: Buffer.from(record, 'utf8'), copies };
    if (rows.length < pageSize) return;
    after = rows[rows.length - 1]!.id;
  }
}

/**
 * A one-line error for an audit table that cannot be read (found by probing: `relation … does not
 * exist [INTERNAL]` with a stack trace). A table or schema that is not there is a configuration
 * matter (exit 2): the trail is elsewhere, or was never written in this database.
 */
function auditReadError(error: unknown, schema: string, table: string): AuditlogError {
  if (error instanceof AuditlogError) return error;
  const state = sqlState(error);
  // No such table, schema or database: configuration. Not connected (no SQLSTATE — a Node error
  // code such as ECONNREFUSED — a connection exception, authentication refused, the server
  // starting up or full of connections): DB_CONNECT.
  const missing = state === '42P01' || state === '3F000' || state === '3D000';
  const notConnected = state === undefined || /^E[A-Z]+$/.test(state) || state.startsWith('08') || state === '28P01' || state === '28000' || state === '57P03' || state === '53300';
  return new AuditlogError(
    missing ? 'CONFIG_INVALID' : notConnected ? 'DB_CONNECT' : 'DB_QUERY',
    `the audit table ${schema}.${table} cannot be read: ${describeError(error)}${missing ? ': check compliance.audit (database, schema, table) in the config — the trail is written there by the first run' : ''}`,
    { cause: error, details: { schema, table } },
  );
}

/** The whole audit table at once (tests, small trails); list and verify stream it instead. */
export async function readDatabaseAuditRecords(pool: pg.Pool, schema: string, table: string): Promise<StoredAuditRecord[]> {
  const out: StoredAuditRecord[] = [];
  for await (const item of streamDatabaseAuditRecords(pool, schema, table)) out.push(item);
  return out;
}

/** Appends to several trails (backend: both); the first failure is reported, after all were tried. */
export class FanOutAuditTrail implements AuditTrail {
  readonly description: string;
  constructor(private readonly trails: readonly AuditTrail[]) {
    this.description = trails.map((t) => t.description).join(' and ');
  }
  async open(): Promise<void> {
    for (const t of this.trails) await t.open();
  }
  async append(entry: AuditEntry): Promise<AuditRecord> {
    const results = await Promise.allSettled(this.trails.map((t) => t.append(entry)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return (results[0] as PromiseFulfilledResult<AuditRecord>).value;
  }
  async flush(): Promise<void> {
    for (const t of this.trails) await t.flush();
  }
}
