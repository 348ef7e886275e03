/**
 * Retention bounds (at config load and again before archival) and encryption enforcement,
 * including the HEAD check after upload that stops a batch before its delete.
 */
import { describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { archiveWith, buildConfig } from '../helpers/archive-run.js';
import { eventsTable, useArchiveFixture } from '../helpers/archive-fixture.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { inspectArchive } from '../helpers/archive-inspect.js';
import { parseConfig } from '../../src/config/load-config.js';
import { RunEvents, type RunEventMap } from '../../src/core/run-events.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { localSchema } from '../../src/config/schema.js';
import type { ObjectInfo, ObjectStore } from '../../src/storage/object-store.js';
import { AuditlogError } from '../../src/core/errors.js';

const fx = useArchiveFixture();

const yaml = (tables: string, compliance: string): string => `
local: { path: /tmp/x }
compliance:
${compliance}
databases:
  - name: app
    url: postgresql://localhost/app
    tables:
${tables}
`;

function configError(text: string): AuditlogError {
  try {
    parseConfig(text, 'c.yaml', {});
  } catch (error) {
    return error as AuditlogError;
  }
  throw new Error('expected a config error');
}

/** The S3 store, but HEAD reports the given encryption: s3rver stores the SSE header and never reports it back. */
class ReportingEncryption implements ObjectStore {
  readonly description: string;
  constructor(
    private readonly inner: S3ObjectStore,
    private readonly reported: string | undefined,
    private readonly onlyFor: (key: string) => boolean = () => true,
  ) {
    this.description = inner.description;
  }
  put: ObjectStore['put'] = (k, b, o) => this.inner.put(k, b, o);
  get: ObjectStore['get'] = (k) => this.inner.get(k);
  delete: ObjectStore['delete'] = (k) => this.inner.delete(k);
  deleteMany: ObjectStore['deleteMany'] = (k) => this.inner.deleteMany(k);
  list: ObjectStore['list'] = (p) => this.inner.list(p);
  check: ObjectStore['check'] = () => this.inner.check();
  async head(key: string): Promise<ObjectInfo | undefined> {
    const info = await this.inner.head(key);
    if (info === undefined) return undefined;
    const { serverSideEncryption: _ignored, ...rest } = info;
    return this.reported === undefined || !this.onlyFor(key) ? rest : { ...rest, serverSideEncryption: this.reported };
  }
}

describe('retention policy at config load', () => {
  it('a table below the global minimum is a CONFIG_INVALID naming its path, its retention and the bound', () => {
    const e = configError(yaml('      - { name: a, timestamp_column: t, retention_days: 365 }\n      - { name: audit, timestamp_column: t, retention_days: 7 }', '  min_retention_days: 30'));
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.message).toContain('databases[0].tables[1].retention_days');
    expect(e.message).toContain('app/public.audit has retention_days 7, below the compliance minimum of 30');
  });

  it('a table inheriting defaults.retention_days above a classification maximum is refused too', () => {
    const e = configError(yaml('      - { name: users_log, timestamp_column: t, classification: PII }', '  data_classifications:\n    PII: { min: 30, max: 60 }'));
    expect(e.message).toContain('databases[0].tables[0].retention_days');
    expect(e.message).toContain('retention_days 90, above the classification PII maximum of 60');
  });

  it('an unknown classification is a config error naming the defined ones', () => {
    const e = configError(yaml('      - { name: a, timestamp_column: t, classification: PHI }', '  data_classifications:\n    PII: { max: 365 }'));
    expect(e.message).toContain('databases[0].tables[0].classification');
    expect(e.message).toContain('defined: PII');
  });

  it('bounds no retention can satisfy are refused where they are set, not with a per-table fix that the other bound refuses (found by probing)', () => {
    const global = configError(yaml('      - { name: audit, timestamp_column: t, retention_days: 380 }', '  min_retention_days: 400\n  max_retention_days: 365'));
    expect(global.message).toContain('compliance.min_retention_days: 400 is above compliance.max_retention_days (365)');
    expect(global.message).not.toContain('raise its retention_days');
    const own = configError(yaml('      - { name: audit, timestamp_column: t, classification: PII, retention_days: 45 }', '  data_classifications:\n    PII: { min: 50, max: 40 }'));
    expect(own.message).toContain('compliance.data_classifications.PII.min: classification PII allows no retention_days: the minimum 50 (its min) is above the maximum 40 (its max)');
    expect(own.message).not.toContain('databases[0]');
    const mixed = configError(yaml('      - { name: audit, timestamp_column: t, classification: PII, retention_days: 25 }', '  min_retention_days: 30\n  data_classifications:\n    PII: { max: 20 }'));
    expect(mixed.message).toContain('compliance.data_classifications.PII.max: classification PII allows no retention_days: the minimum 30 (compliance.min_retention_days) is above the maximum 20 (its max)');
    expect(mixed.message).not.toContain('databases[0]');
  });

  it('retention inside every bound loads', () => {
    const c = parseConfig(yaml('      - { name: a, timestamp_column: t, classification: PII, retention_days: 60 }', '  min_retention_days: 30\n  data_classifications:\n    PII: { min: 30, max: 365 }'), 'c.yaml', {});
    expect(c.databases[0]!.tables[0]!.classification).toBe('PII');
  });
});

describe('compliance before archival', () => {
  it('a retention changed after load is refused before anything is read (POLICY_VIOLATION, announced), other tables go on', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11, table: 'other' });
    const config = buildConfig({ s3: fx.s3cfg, compliance: { min_retention_days: 10 }, defaults: { retention_days: 10 }, databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable, { name: 'other', timestamp_column: 'happened_at' }] }] });
    config.databases[0]!.tables[0]!.retention_days = 3;
    const events = new RunEvents();
    const violations: RunEventMap['policy:violation'][] = [];
    events.on('policy:violation', (e) => {
      violations.push(e);
    });
    const summary = await archiveWith(config, fx.store, { events });
    expect(summary.tables[0]).toMatchObject({ status: 'failed', error: { code: 'POLICY_VIOLATION' } });
    expect(summary.tables[0]!.error!.message).toContain('app/public.events has retention_days 3, below the compliance minimum of 10');
    expect(summary.tables[1]).toMatchObject({ status: 'archived', rowsArchived: 10 });
    expect(await rowIds(fx.db)).toHaveLength(10);
    expect(violations.map((v) => [v.table, v.code])).toEqual([['events', 'POLICY_VIOLATION']]);
  });

  it('a critical table without s3.sse is refused (ENCRYPTION_REQUIRED); its rows stay, nothing is written', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const config = fx.configFor([{ ...eventsTable, critical: true }]);
    const summary = await archiveWith(config, fx.store);
    expect(summary.tables[0]).toMatchObject({ status: 'failed', error: { code: 'ENCRYPTION_REQUIRED' } });
    expect(summary.tables[0]!.error!.message).toContain('set s3.sse to AES256 or aws:kms');
    expect(await rowIds(fx.db)).toHaveLength(10);
    expect((await inspectArchive(fx.store)).allKeys).toEqual([]);
  });

  it('a classification that requires encryption cannot be archived to local: storage', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-local-enc-'));
    const config = buildConfig({
      local: { path: dir },
      compliance: { data_classifications: { PII: { require_encryption: true } } },
      defaults: { retention_days: 10 },
      databases: [{ name: 'app', url: fx.db.url, tables: [{ ...eventsTable, classification: 'PII' }] }],
    });
    const summary = await archiveWith(config, new LocalObjectStore(localSchema.parse({ path: dir })));
    expect(summary.tables[0]).toMatchObject({ status: 'failed', error: { code: 'ENCRYPTION_REQUIRED' } });
    expect(summary.tables[0]!.error!.message).toContain('local: storage cannot provide');
    expect(await rowIds(fx.db)).toHaveLength(10);
  });

  it('enforce_encryption: false lets a critical table through without sse', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const config = buildConfig({ s3: fx.s3cfg, compliance: { enforce_encryption: false }, defaults: { retention_days: 10 }, databases: [{ name: 'app', url: fx.db.url, tables: [{ ...eventsTable, critical: true }] }] });
    const summary = await archiveWith(config, fx.store);
    expect(summary.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 10 });
  });

  it('after upload, an object the server does not report as encrypted fails the batch before its delete, and is removed', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const s3cfg = { ...fx.s3cfg, sse: 'AES256' as const };
    const config = buildConfig({ s3: s3cfg, defaults: { retention_days: 10, batch_size: 7 }, databases: [{ name: 'app', url: fx.db.url, tables: [{ ...eventsTable, critical: true }] }] });
    // The real s3rver, as it is: it accepts the SSE header and never reports it on HEAD.
    const summary = await archiveWith(config, new S3ObjectStore(s3cfg));
    expect(summary.tables[0]).toMatchObject({ status: 'failed', error: { code: 'ENCRYPTION_MISMATCH' } });
    expect(summary.tables[0]!.error!.message).toContain('reports server-side encryption none after upload, expected AES256');
    expect(await rowIds(fx.db)).toHaveLength(10);
    const archive = await inspectArchive(fx.store);
    expect(archive.allKeys.filter((k) => k.endsWith('.jsonl.gz'))).toEqual([]);
  });

  it('a different encryption than configured (AES256 reported, aws:kms expected) is a mismatch too', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const s3cfg = { ...fx.s3cfg, sse: 'aws:kms' as const };
    const config = buildConfig({ s3: s3cfg, defaults: { retention_days: 10 }, databases: [{ name: 'app', url: fx.db.url, tables: [{ ...eventsTable, critical: true }] }] });
    const summary = await archiveWith(config, new ReportingEncryption(new S3ObjectStore(s3cfg), 'AES256'));
    expect(summary.tables[0]).toMatchObject({ status: 'failed', error: { code: 'ENCRYPTION_MISMATCH' } });
    expect(await rowIds(fx.db)).toHaveLength(10);
  });

  it('a metadata sidecar (it lists primary keys) not reported as encrypted fails the batch before its delete as well', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const s3cfg = { ...fx.s3cfg, sse: 'AES256' as const };
    const config = buildConfig({ s3: s3cfg, defaults: { retention_days: 10 }, databases: [{ name: 'app', url: fx.db.url, tables: [{ ...eventsTable, critical: true }] }] });
    const summary = await archiveWith(config, new ReportingEncryption(new S3ObjectStore(s3cfg), 'AES256', (key) => key.endsWith('.jsonl.gz')));
    expect(summary.tables[0]).toMatchObject({ status: 'failed', error: { code: 'ENCRYPTION_MISMATCH' } });
    expect(summary.tables[0]!.error!.message).toContain('.metadata.json');
    expect(await rowIds(fx.db)).toHaveLength(10);
  });

  it('when the server reports the configured encryption, the critical table is archived and deleted as usual', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    const s3cfg = { ...fx.s3cfg, sse: 'AES256' as const };
    const config = buildConfig({ s3: s3cfg, defaults: { retention_days: 10, batch_size: 4 }, databases: [{ name: 'app', url: fx.db.url, tables: [{ ...eventsTable, critical: true }] }] });
    const summary = await archiveWith(config, new ReportingEncryption(new S3ObjectStore(s3cfg), 'AES256'));
    expect(summary.tables[0]).toMatchObject({ status: 'archived', rowsArchived: 10 });
    expect(await rowIds(fx.db)).toEqual([]);
  });
});

describe('rows archived before, back in a table that now requires encryption', () => {
  it('are not deleted against the old unencrypted object (ENCRYPTION_MISMATCH), and the object stays as it was (found in review)', async () => {
    await createEventsTable(fx.db, { rows: 10, stepMinutes: 60, endDaysAgo: 11 });
    await fx.db.query('CREATE TABLE events_copy AS SELECT * FROM events');
    // First archived while the table needed no encryption.
    const plain = buildConfig({ s3: fx.s3cfg, defaults: { retention_days: 10, batch_size: 50 }, databases: [{ name: 'app', url: fx.db.url, tables: [eventsTable] }] });
    expect((await archiveWith(plain, fx.store)).tables[0]!.rowsArchived).toBe(10);
    const before = (await inspectArchive(fx.store)).objects.map((o) => [o.key, o.meta.sha256_compressed]);
    // The rows come back; the table is now critical with SSE; new uploads report it, the old object does not.
    await fx.db.query('INSERT INTO events SELECT * FROM events_copy');
    const s3cfg = { ...fx.s3cfg, sse: 'AES256' as const };
    const critical = buildConfig({ s3: s3cfg, defaults: { retention_days: 10, batch_size: 50 }, databases: [{ name: 'app', url: fx.db.url, tables: [{ ...eventsTable, critical: true }] }] });
    const oldKeys = new Set(before.map(([k]) => k!));
    const summary = await archiveWith(critical, new ReportingEncryption(new S3ObjectStore(s3cfg), 'AES256', (key) => !oldKeys.has(key) && !oldKeys.has(key.replace('.metadata.json', '.jsonl.gz'))));
    expect(summary.tables[0]).toMatchObject({ status: 'failed', error: { code: 'ENCRYPTION_MISMATCH' } });
    expect(summary.tables[0]!.error!.message).toContain('committed object');
    expect(await rowIds(fx.db)).toHaveLength(10);
    const after = await inspectArchive(fx.store);
    expect(after.objects.map((o) => [o.key, o.meta.sha256_compressed])).toEqual(before);
    expect(after.pendingMarkers).toEqual([]);
  });
});
