/** Pure pieces of compliance: hold matching and expiry, encryption requirement, the summary's held lines. */
import { describe, expect, it } from 'vitest';
import { RunEvents } from '../../src/core/run-events.js';
import { subscribeAuditTrail } from '../../src/compliance/audit-subscriber.js';
import type { AuditTrail } from '../../src/compliance/audit-trail.js';
import type { AuditEntry } from '../../src/compliance/audit-record.js';
import { holdApplies, holdsForTable, holdTableNameProblem, isExpired, type LegalHold } from '../../src/compliance/legal-hold.js';
import { addDatabaseAliases } from '../../src/compliance/hold-database-aliases.js';
import { requiresEncryption } from '../../src/compliance/retention-policy.js';
import { loadApiHolds } from '../../src/compliance/load-api-holds.js';
import { holdApiSchema } from '../../src/config/schema.js';
import { formatRunSummary } from '../../src/cli/format-summary.js';
import { parseSince } from '../../src/cli/audit-commands.js';
import type { TableSummary } from '../../src/archive/table-summary.js';

const now = new Date('2026-11-30T00:00:00Z');
const hold = (h: Partial<LegalHold>): LegalHold => ({ source: 'config', table: 'events', reason: 'r', ...h });

describe('holdsForTable', () => {
  it('matches by name or schema.name and database, splits table-level, record-level and expired', () => {
    const id = { database: 'app', schema: 'audit', table: 'events' };
    const found = holdsForTable(
      [
        hold({ reason: 'a' }),
        hold({ table: 'audit.events', where: 'id = 1', reason: 'b' }),
        hold({ table: 'public.events', reason: 'other schema' }),
        hold({ database: 'reporting', reason: 'other database' }),
        hold({ reason: 'old', expiresAt: '2026-11-29T23:59:59Z' }),
        hold({ reason: 'future', expiresAt: '2026-12-01T00:00:00Z', where: 'true' }),
      ],
      id,
      now,
    );
    expect(found.tableLevel.map((h) => h.reason)).toEqual(['a']);
    expect(found.rowLevel.map((r) => r.hold.reason)).toEqual(['b', 'future']);
    expect(found.expired.map((h) => h.reason)).toEqual(['old']);
  });

  it('an expiry that does not parse keeps the hold (fail closed); expiry exactly now has expired', () => {
    expect(isExpired(hold({ expiresAt: 'next tuesday' }), now)).toBe(false);
    expect(isExpired(hold({ expiresAt: now.toISOString() }), now)).toBe(true);
  });
});

describe('loadApiHolds (the answer, read with a size cap)', () => {
  it('reads a JSON answer that starts with a UTF-8 byte order mark, as Response.json() did (found in review)', async () => {
    const body = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify({ holds: [{ table: 'public.events', reason: 'case 1' }] }))]);
    const api = holdApiSchema.parse({ url: 'http://holds.example/api/holds' });
    const holds = await loadApiHolds({ api, fetch: async () => new Response(body, { status: 200, headers: { 'content-type': 'application/json' } }) });
    expect(holds.map((h) => [h.table, h.reason])).toEqual([['public.events', 'case 1']]);
  });
});

describe('holdApplies', () => {
  it('matches however the table is spelled — case, double quotes, surrounding spaces — and nothing else (found in review)', () => {
    const id = { database: 'app', schema: 'public', table: 'events' };
    const applies = (table: string, database?: string): boolean => holdApplies({ source: 'api', table, reason: 'r', ...(database === undefined ? {} : { database }) }, id);
    for (const t of ['events', 'public.events', 'public.Events', 'EVENTS', '"public"."events"', '"events"', ' public.events ', 'public . events']) expect(applies(t), t).toBe(true);
    for (const t of ['other', 'public.other', 'audit.events', '"public.events"', '', '"unterminated']) expect(applies(t), t).toBe(false);
    // A dot in the table's name, unquoted as configured: every reading of the dots counts (fail closed).
    const dotted = { database: 'app', schema: 'public', table: 'my.events' };
    for (const t of ['my.events', 'public.my.events', 'PUBLIC.My.Events', '"my.events"', 'public."my.events"']) expect(holdApplies({ source: 'api', table: t, reason: 'r' }, dotted), t).toBe(true);
    for (const t of ['"my"."events"', 'my.other', 'public."my".events']) expect(holdApplies({ source: 'api', table: t, reason: 'r' }, dotted), t).toBe(false);
    expect(applies('events', ' app ')).toBe(true);
    expect(applies('events', 'other_db')).toBe(false);
  });

  it('addDatabaseAliases: a hold reaches the other names of its database, and every name whose identity is unknown (fail closed)', () => {
    const hold: LegalHold = { source: 'config', database: 'app', table: 'events', reason: 'r' };
    const aliases = (ids: [string, string | undefined][]): string[] | undefined => addDatabaseAliases([hold], new Map(ids))[0]!.databaseAliases;
    expect(aliases([['app', 'A'], ['app_again', 'A'], ['billing', 'B']])).toEqual(['app_again']);
    expect(aliases([['app', 'A'], ['billing', 'B']])).toBeUndefined();
    // Another name unknown: it may be `app`.
    expect(aliases([['app', 'A'], ['app_again', undefined], ['billing', 'B']])).toEqual(['app_again']);
    // The held database's own identity unknown: any other name may be it.
    expect(aliases([['app', undefined], ['app_again', 'A'], ['billing', 'B']])).toEqual(['app_again', 'billing']);
    // A hold on no particular database is left as it is.
    expect(addDatabaseAliases([{ ...hold, database: undefined } as LegalHold], new Map([['app', undefined]]))[0]!.databaseAliases).toBeUndefined();
  });

  it('a table name that can match no table is a problem (refused or failed closed by every source); any name that can match is not', () => {
    for (const t of ['', '   ', 'public.', '.events', '"unterminated', '"a"b']) expect(holdTableNameProblem(t), JSON.stringify(t)).toMatch(/^expected the held table as name or schema\.name/);
    for (const t of ['events', 'public.events', 'my.events', 'a.b.c', '"my.events"', ' public . events ', '"a""b"']) expect(holdTableNameProblem(t), t).toBeUndefined();
  });
});

describe('requiresEncryption', () => {
  const config = (enforce: boolean | undefined) => ({
    defaults: { retention_days: 90 },
    compliance: { enforce_encryption: enforce, data_classifications: { PII: { require_encryption: true }, PUBLIC: {} } },
    databases: [],
  });
  it('critical or a classification that requires it, unless enforcement is off', () => {
    expect(requiresEncryption(config(true), { name: 't', critical: true })).toBe(true);
    expect(requiresEncryption(config(true), { name: 't', classification: 'PII' })).toBe(true);
    expect(requiresEncryption(config(true), { name: 't', classification: 'PUBLIC' })).toBe(false);
    expect(requiresEncryption(config(undefined), { name: 't', critical: true })).toBe(true);
    expect(requiresEncryption(config(false), { name: 't', critical: true })).toBe(false);
  });
});

describe('formatRunSummary', () => {
  it('counts held tables apart from failed ones and names the holds', () => {
    const base: TableSummary = { database: 'app', schema: 'public', table: 'events', status: 'held', rowsArchived: 0, rowsSkipped: 0, batches: 0, bytesUncompressed: 0, bytesCompressed: 0, durationMs: 0, rowsPerSecond: 0 };
    const text = formatRunSummary({
      runId: 'r1',
      dryRun: false,
      failed: 0,
      held: 1,
      durationMs: 1000,
      tables: [
        { ...base, holds: { tableLevel: ['config hold on events (Case 1)'], recordLevel: [], expired: [] } },
        { ...base, table: 'other', status: 'archived', rowsArchived: 5, rowsSkipped: 2, holds: { tableLevel: [], recordLevel: ['api hold on other (Case 2)'], expired: ['config hold on other (Case 0)'] } },
      ],
    });
    expect(text).toContain('note: app/public.other: 2 row(s) read were not archived: changed, locked or removed since they were read; those still in the table are archived by a later run');
    expect(text).toContain('2 table(s), 0 failed, 1 held');
    expect(text).toContain('held: app/public.events: config hold on events (Case 1)');
    expect(text).toContain('note: app/public.other: rows matching the api hold on other (Case 2) stay in the table');
    expect(text).toContain('note: app/public.other: expired config hold on other (Case 0) ignored');
  });
});

describe('subscribeAuditTrail', () => {
  it('lists in each ARCHIVE_SUCCESS only the objects of that run, also when one event stream serves many runs (the daemon; found in review)', async () => {
    const appended: AuditEntry[] = [];
    const trail: AuditTrail = { description: 'test', open: async () => undefined, flush: async () => undefined, append: async (e) => (appended.push(e), {} as never) };
    const events = new RunEvents();
    subscribeAuditTrail(events, trail);
    const ref = { database: 'app', schema: 'public', table: 'events' };
    const summary = (runId: string): TableSummary => ({ ...ref, status: 'archived', rowsArchived: 1, rowsSkipped: 0, batches: 1, bytesUncompressed: 1, bytesCompressed: 1, durationMs: 1, rowsPerSecond: 1 });
    for (const [runId, key] of [['run-1', 'obj-A'], ['run-2', 'obj-B']] as const) {
      events.emit('run:started', { runId, command: 'archive', dryRun: false, at: '' });
      events.emit('batch:committed', { ...ref, runId, key, rows: 1, rowsSkipped: 0, bytesUncompressed: 1, bytesCompressed: 1 });
      events.emit('table:finished', { ...ref, runId, summary: summary(runId) });
      await events.settle();
    }
    const tables = appended.filter((e) => e.event === 'ARCHIVE_SUCCESS' && e.table === 'events');
    expect(tables.map((e) => e.objectKeys)).toEqual([['obj-A'], ['obj-B']]);
  });
});

describe('parseSince (audit list/verify --since)', () => {
  it('reads a day as midnight UTC and an instant with its offset', () => {
    expect(parseSince(undefined)).toBeUndefined();
    expect(parseSince('2024-02-29')!.toISOString()).toBe('2024-02-29T00:00:00.000Z');
    expect(parseSince('2026-01-31T12:00:00Z')!.toISOString()).toBe('2026-01-31T12:00:00.000Z');
    // Records carry milliseconds: a fraction past them rounds up, so a record of .123Z is not "since" .123456Z.
    expect(parseSince('2026-01-31T12:00:00.123456Z')!.toISOString()).toBe('2026-01-31T12:00:00.124Z');
    expect(parseSince('2026-01-31T12:00:00.123000Z')!.toISOString()).toBe('2026-01-31T12:00:00.123Z');
    expect(parseSince('2026-01-31T12:00:00.1Z')!.toISOString()).toBe('2026-01-31T12:00:00.100Z');
    expect(parseSince('2026-03-01T00:30+01:00')!.toISOString()).toBe('2026-02-28T23:30:00.000Z');
  });

  it.each(['2026-02-30', '2026-1-1', '2026-13-01', '2026-00-10', '2026-02-30T00:00:00Z', '2026-01-31T24:00:00Z', '2026-01-31T12:00:00', '2026-01-31 12:00:00Z', 'Jan 1 2026', '1767225600000', ''])(
    'refuses %j as a USAGE error (no day rolled over, nothing read in local time)',
    (value) => {
      expect(() => parseSince(value)).toThrow(expect.objectContaining({ code: 'USAGE', message: expect.stringContaining(`got "${value}"`) }));
    },
  );
});
