import { describe, expect, it } from 'vitest';
import { buildConfigDocument, findEnvVariable, renderConfigYaml } from '../../src/wizard/build-config.js';
import { parseConfig } from '../../src/config/load-config.js';
import { chooseTimestampColumn, databaseNameFromUrl, suggestIndexSql, suggestRetentionDays, timestampAndKeyRefusals } from '../../src/wizard/suggest.js';
import { AGE_BUCKETS_DAYS } from '../../src/wizard/inspect-database.js';

const distribution = (rows: number, olderThan: Record<number, number>) => ({ rows, olderThan: AGE_BUCKETS_DAYS.map((days) => ({ days, rows: olderThan[days] ?? 0 })) });

describe('wizard suggestions', () => {
  it('prefers an indexed, NOT NULL, creation-like timestamp column', () => {
    const c = (name: string, indexed: boolean, notNull: boolean) => ({ name, type: 'timestamptz' as const, indexed, notNull });
    expect(chooseTimestampColumn([c('updated_at', false, true), c('created_at', true, true)])?.name).toBe('created_at');
    expect(chooseTimestampColumn([c('created_at', false, true), c('updated_at', true, false)])?.name).toBe('updated_at');
    expect(chooseTimestampColumn([c('updated_at', false, true), c('created_at', false, true)])?.name).toBe('created_at');
    expect(chooseTimestampColumn([c('deleted_at', false, false), c('seen', false, true)])?.name).toBe('seen');
    expect(chooseTimestampColumn([])).toBeUndefined();
  });

  it('suggests the longest usual retention that still moves three quarters of the rows, else 90 days', () => {
    // Three years at a steady rate: 92% older than 90 days, 84% older than 180, 67% older than 365.
    expect(suggestRetentionDays(distribution(1095, { 7: 1088, 30: 1065, 90: 1005, 180: 915, 365: 730, 730: 365 }))).toBe(180);
    expect(suggestRetentionDays(distribution(400, { 30: 370, 90: 310, 180: 220, 365: 35 }))).toBe(90);
    expect(suggestRetentionDays(distribution(100, { 30: 70, 90: 10 }))).toBe(90);
    expect(suggestRetentionDays(distribution(0, {}))).toBe(90);
    expect(suggestRetentionDays(distribution(10, { 7: 10, 30: 10, 90: 10, 180: 10, 365: 10, 730: 10, 1095: 10 }))).toBe(730);
  });

  it('writes the index on (timestamp, key) with every identifier quoted', () => {
    expect(suggestIndexSql({ schema: 'a"b', name: 'we ird', key: { columns: ['id'], kind: 'primary key' } }, 'Created')).toBe(
      'CREATE INDEX CONCURRENTLY "we ird_Created_archive_idx" ON "a""b"."we ird" ("Created", "id");',
    );
  });

  it('names the database after the URL path', () => {
    expect(databaseNameFromUrl('postgresql://u:p@h:5432/app_prod?sslmode=require')).toBe('app_prod');
    expect(databaseNameFromUrl('postgresql://h/')).toBe('app');
    expect(databaseNameFromUrl('not a url')).toBe('app');
  });

  it('finds the environment variable holding a value, preferred names first', () => {
    const env = { A_URL: 'postgresql://x', DATABASE_URL: 'postgresql://x', OTHER: 'y' };
    expect(findEnvVariable('postgresql://x', env, ['DATABASE_URL'])).toBe('DATABASE_URL');
    expect(findEnvVariable('postgresql://x', env)).toBe('A_URL');
    expect(findEnvVariable('nope', env)).toBeUndefined();
    expect(findEnvVariable('', { EMPTY: '' })).toBeUndefined();
  });

  it('makes the most common retention the default and overrides it per table; the YAML loads', () => {
    const answers = {
      database: { name: 'app', url: { env: 'APP_URL' } },
      tables: [
        { schema: 'public', name: 'a', timestampColumn: 'ts', primaryKey: ['id'], retentionDays: 180 },
        { schema: 'audit', name: 'b', timestampColumn: 'ts', primaryKey: ['k1', 'k2'], retentionDays: 30 },
        { schema: 'public', name: 'c', timestampColumn: 'ts', primaryKey: ['id'], retentionDays: 180 },
      ],
      storage: { kind: 'local' as const, path: './archive' },
    };
    expect(buildConfigDocument(answers)).toMatchObject({ defaults: { retention_days: 180 }, databases: [{ url: '${APP_URL}', tables: [{ name: 'a' }, { name: 'b', schema: 'audit', retention_days: 30, primary_key: ['k1', 'k2'] }, { name: 'c' }] }] });
    const config = parseConfig(renderConfigYaml(answers, '2026-01-01T00:00:00.000Z'), 'w.yaml', { APP_URL: 'postgresql://db/app' });
    expect(config.databases[0]?.tables[1]).toMatchObject({ schema: 'audit', retention_days: 30 });
    expect(config.databases[0]?.tables[0]?.retention_days).toBeUndefined();
  });
  it('refuses, with the fix, a table without a key and one without a timestamp column: every reason, not the first', () => {
    const ts = [{ name: 'created_at', type: 'timestamptz' as const, notNull: true, indexed: true }];
    expect(timestampAndKeyRefusals({ schema: 'public', name: 'ok', key: { columns: ['id'], kind: 'primary key' }, timestampCandidates: ts })).toEqual([]);
    const both = timestampAndKeyRefusals({ schema: 'public', name: 'bare', key: null, timestampCandidates: [] });
    expect(both).toHaveLength(2);
    expect(both[0]).toMatch(/^public\.bare has no primary key .*ALTER TABLE "public"\."bare" ADD PRIMARY KEY/);
    expect(both[1]).toMatch(/^public\.bare has no timestamptz, timestamp or date column/);
  });
});
