import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  findSchemasAt,
  formatConfigIssues,
  formatConfigPath,
  markDefaultMessages,
} from '../../src/config/format-config-issues.js';
import { configSchema } from '../../src/config/schema.js';

function format(schema: z.ZodType, input: unknown, sources?: ReadonlyMap<string, string>): string[] {
  const result = schema.safeParse(input, { error: markDefaultMessages });
  if (result.success) throw new Error('expected the input to be invalid');
  return formatConfigIssues(result.error.issues, { input, schema, sources }).map((i) => `${i.path}: ${i.message}`);
}

describe('formatConfigPath', () => {
  it.each([
    [[], ''],
    [['databases', 0, 'tables', 1, 'retention_days'], 'databases[0].tables[1].retention_days'],
    [[0, 'a'], '[0].a'],
    [['databases', 0, 'my key'], 'databases[0]["my key"]'],
    [['a.b', 'c'], '["a.b"].c'],
  ])('formats %j as %s', (path, text) => {
    expect(formatConfigPath(path)).toBe(text);
  });
});

describe('findSchemasAt', () => {
  it('follows objects, arrays, optional/default wrappers and unions', () => {
    expect(findSchemasAt(configSchema, ['databases', 0, 'port']).map((s) => s.def.type)).toEqual(['number']);
    expect(findSchemasAt(configSchema, ['defaults', 'retention_days']).map((s) => s.def.type)).toEqual(['number']);
    expect(findSchemasAt(configSchema, ['databases', 0, 'tables', 0, 'primary_key']).map((s) => s.def.type)).toEqual(['string', 'array']);
    expect(findSchemasAt(configSchema, ['databases', 0, 'tables', 0, 'primary_key', 1]).map((s) => s.def.type)).toEqual(['string']);
  });

  it('finds nothing below unknown keys or mismatched steps', () => {
    expect(findSchemasAt(configSchema, ['nope'])).toEqual([]);
    expect(findSchemasAt(configSchema, ['databases', 'x'])).toEqual([]);
  });
});

describe('formatConfigIssues', () => {
  it('describes numeric ranges from the schema', () => {
    const schema = z.object({
      positive: z.number().int().positive(),
      nonNegative: z.number().int().nonnegative(),
      range: z.number().int().min(1).max(20),
      exclusive: z.number().gt(0).lt(1),
      atLeast: z.number().int().min(5),
    });
    expect(format(schema, { positive: 0, nonNegative: -1, range: 21, exclusive: 1, atLeast: 4.5 })).toEqual([
      'positive: expected a positive integer, found 0',
      'nonNegative: expected a non-negative integer, found -1',
      'range: expected an integer from 1 to 20, found 21',
      'exclusive: expected a number > 0 and < 1, found 1',
      'atLeast: expected an integer >= 5, found 4.5',
    ]);
  });

  it('describes enums, strings and booleans', () => {
    expect(format(configSchema.shape.s3.unwrap(), { bucket: 'ab', storage_class: 'COLD', force_path_style: 'yes' })).toEqual([
      'bucket: expected a string of at least 3 characters, found "ab"',
      'force_path_style: expected true or false, found "yes"',
      'storage_class: expected one of "STANDARD", "INTELLIGENT_TIERING", "STANDARD_IA", "ONEZONE_IA", "GLACIER_IR", "GLACIER", "DEEP_ARCHIVE", found "COLD"',
    ]);
  });

  it('keeps messages the schema author wrote, adding the value when they state an expectation', () => {
    const schema = z.object({ prefix: z.string().regex(/\/$/, 'expected a prefix ending in "/"'), other: z.string().min(2, 'too short') });
    expect(format(schema, { prefix: 'archives', other: 'x' })).toEqual([
      'prefix: expected a prefix ending in "/", found "archives"',
      'other: too short',
    ]);
  });

  it('gives one line per unknown key, with a suggestion when one is close', () => {
    expect(
      format(configSchema.shape.defaults.unwrap(), { 'batch-size': 1, retention_dys: 1, idleInTransactionSessionTimeoutMs: 1, zzz: 1 }),
    ).toEqual([
      'batch-size: unknown key (did you mean "batch_size"?)',
      'retention_dys: unknown key (did you mean "retention_days"?)',
      'idleInTransactionSessionTimeoutMs: unknown key (did you mean "idle_in_transaction_session_timeout_ms"?)',
      'zzz: unknown key',
    ]);
  });

  it('names where a value came from, masking URL passwords and secrets in it', () => {
    const schema = z.object({ name: z.string().max(5), password: z.string() });
    const sources = new Map([['name', 'postgresql://u:${PW}@h/${X}']]);
    const lines = format(schema, { name: 'postgresql://u:hunter2@h/db', password: 'hunter2' }, sources);
    expect(lines).toEqual(['name: expected a string of at most 5 characters, found "postgresql://u:****@h/db" (from "postgresql://u:****@h/${X}")']);
  });

  it('masks defaults of ${VAR:-default} and literal text written for every secret key, keeping the variable names', () => {
    const keys = ['webhook_url', 'password', 'secret_access_key', 'access_key_id', 'session_token'] as const;
    const schema = z.object(Object.fromEntries(keys.map((k) => [k, z.string().min(20)])));
    const input = Object.fromEntries(keys.map((k) => [k, 'x']));
    const sources = new Map<string, string>([
      ['webhook_url', '${SLACK_WEBHOOK_URL:-https://hooks.slack.com/services/T0AAA/B0BBB/RealT0kenXYZ}'],
      ['password', 'pre-${SMTP_PASSWORD:-Smtp-Pa55}-post'],
      ['secret_access_key', '${AWS_SECRET_ACCESS_KEY:-wJalrXUtnFEMI/K7MDENG}'],
      ['access_key_id', '${AWS_ACCESS_KEY_ID:-AKIAREALKEY}${EMPTY:-}'],
      ['session_token', 'https://hooks.example/${TOKEN:-tok-9876}$${x'],
    ]);
    const lines = format(schema, input, sources);
    expect(lines).toEqual([
      'webhook_url: expected a string of at least 20 characters, found **** (from "${SLACK_WEBHOOK_URL:-****}")',
      'password: expected a string of at least 20 characters, found **** (from "****${SMTP_PASSWORD:-****}****")',
      'secret_access_key: expected a string of at least 20 characters, found **** (from "${AWS_SECRET_ACCESS_KEY:-****}")',
      'access_key_id: expected a string of at least 20 characters, found **** (from "${AWS_ACCESS_KEY_ID:-****}${EMPTY:-}")',
      'session_token: expected a string of at least 20 characters, found **** (from "****${TOKEN:-****}****")',
    ]);
    expect(lines.join('\n')).not.toMatch(/RealT0kenXYZ|Smtp-Pa55|pre-|wJalrXUtnFEMI|AKIAREALKEY|tok-9876|hooks\.example/);
  });

  it('masks URL passwords written as defaults of ${VAR:-default} under non-secret keys', () => {
    const schema = z.object({ url: z.string().max(5), endpoint: z.string().max(5), dsn: z.string().max(5) });
    const sources = new Map<string, string>([
      ['url', '${DATABASE_URL:-postgresql://app:Db-Pa55@db:5432/app}'],
      ['endpoint', 'http://minio:${MINIO_PASSWORD:-Minio-Pa55}@minio:9000'],
      ['dsn', '${PG_DSN:-host=db password=Kw-Pa55 dbname=app}'],
    ]);
    const lines = format(schema, { url: 'postgresql://app@db/app', endpoint: 'http://minio@minio:9000', dsn: 'host=db dbname=app' }, sources);
    expect(lines).toEqual([
      'url: expected a string of at most 5 characters, found "postgresql://app@db/app" (from "${DATABASE_URL:-postgresql://app:****@db:5432/app}")',
      'endpoint: expected a string of at most 5 characters, found "http://minio@minio:9000" (from "http://minio:****@minio:9000")',
      'dsn: expected a string of at most 5 characters, found "host=db dbname=app" (from "${PG_DSN:-host=db password=**** dbname=app}")',
    ]);
    expect(lines.join('\n')).not.toMatch(/Pa55/);
  });

  it('masks values of secret keys whatever their type', () => {
    const schema = z.object({ secret_access_key: z.string(), session_token: z.string() }).strict();
    expect(format(schema, { secret_access_key: 1234567, session_token: ['tok-123'] })).toEqual([
      'secret_access_key: expected a string, found ****',
      'session_token: expected a string, found ****',
    ]);
  });
});
