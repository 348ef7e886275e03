import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { stringify } from 'yaml';
import { z } from 'zod';
import { loadConfig, parseConfig } from '../../src/config/load-config.js';
import { configSchema, MAX_MILLISECONDS, MAX_RETENTION_DAYS } from '../../src/config/schema.js';

type Env = Record<string, string | undefined>;

function parseError(text: string, env: Env = {}): AuditlogError {
  try {
    parseConfig(text, 'c.yaml', env);
  } catch (error) {
    if (error instanceof AuditlogError) return error;
    throw error;
  }
  throw new Error('expected parseConfig to fail');
}

/** A valid config whose databases[0] block is replaced by `database` (indented by the caller). */
function withDatabase(database: string): string {
  return `local:\n  path: ./archive\ndatabases:\n${database}`;
}

const minimal = withDatabase(`  - name: app
    url: postgresql://localhost/app
    tables:
      - name: audit_log
        timestamp_column: created_at
`);

describe('parseConfig: defaults', () => {
  it('applies every default to a minimal config', () => {
    const config = parseConfig(minimal, 'c.yaml', {});
    expect(config.defaults).toEqual({
      retention_days: 90,
      batch_size: 10_000,
      min_batch_size: 1_000,
      target_query_time_ms: 2_000,
      max_batch_bytes: 8_388_608,
      compression: 'gzip',
      pause_between_batches_ms: 0,
      batches_in_flight: 3,
      vacuum_after: false,
      statement_timeout_ms: 300_000,
      lock_timeout_ms: 5_000,
      idle_in_transaction_session_timeout_ms: 60_000,
    });
    expect(config.local).toEqual({
      path: './archive',
      retry: { max_attempts: 5, base_delay_ms: 200, max_delay_ms: 10_000 },
      circuit_breaker: { failure_threshold: 5, recovery_timeout_ms: 30_000 },
    });
    expect(config.s3).toBeUndefined();
    expect(config.parallel_databases).toBe(false);
    expect(config.max_parallel_databases).toBe(2);
    expect(config.application_name).toBe('auditlog-manager');
    expect(config.watermarks).toEqual({ backend: 'storage', schema: 'public', table: 'auditlog_watermarks' });
    expect(config.checkpoints).toEqual({ every_batches: 10, backend: 'storage', local_dir: './.auditlog/checkpoints' });
    expect(config.monitoring).toEqual({ metrics_port: 8000, health_check_port: 8001, listen_host: '0.0.0.0', health_check_timeout_ms: 5_000, progress_update_interval: 5, quiet_mode: false });
    expect(config.daemon).toEqual({ schedule: '0 2 * * *' });
    expect(config.databases[0]?.connection_pool_size).toBe(4);
    expect(config.databases[0]?.tables[0]).toEqual({ name: 'audit_log', schema: 'public', timestamp_column: 'created_at' });
  });

  it('applies s3 defaults', () => {
    const config = parseConfig(minimal.replace('local:\n  path: ./archive', 's3:\n  bucket: audit-archive'), 'c.yaml', {});
    expect(config.s3).toMatchObject({
      bucket: 'audit-archive',
      prefix: '',
      region: 'us-east-1',
      force_path_style: false,
      storage_class: 'STANDARD',
      sse: 'none',
      request_timeout_ms: 60_000,
      retry: { max_attempts: 5, base_delay_ms: 200, max_delay_ms: 10_000 },
    });
    expect(config.s3?.access_key_id).toBeUndefined();
  });

  it('keeps table overrides next to the defaults they override', () => {
    const config = parseConfig(minimal.replace('timestamp_column: created_at', 'timestamp_column: created_at\n        retention_days: 365'), 'c.yaml', {});
    expect(config.databases[0]?.tables[0]?.retention_days).toBe(365);
    expect(config.defaults.retention_days).toBe(90);
  });
});

describe('parseConfig: storage backend', () => {
  it('requires one of s3/local', () => {
    const error = parseError(minimal.replace('local:\n  path: ./archive\n', ''));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toBe('c.yaml: expected exactly one of `s3:` or `local:`, found neither');
  });

  it('refuses, with local: storage, a table whose percent-encoded names would exceed a file name (found by probing: ENAMETOOLONG mid-run)', () => {
    const long = withDatabase(`  - name: app
    url: postgresql://localhost/app
    tables:
      - name: ${'ü'.repeat(31)}
        schema: ${'é'.repeat(31)}
        timestamp_column: created_at
`);
    const error = parseError(long);
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toMatch(/^c\.yaml: databases\[0\]\.tables\[0\]\.name: the archive directory and state files of .* would be named after "%C3%A9.*", 373 bytes .*use s3: storage, or shorter schema and table names$/);
    // S3 keys take 1,024 bytes: the same names are fine there.
    expect(parseConfig(long.replace('local:\n  path: ./archive\n', 's3:\n  bucket: audit-archive\n'), 'c.yaml', {}).databases[0]!.tables[0]!.name).toBe('ü'.repeat(31));
    // A databases[].name is a directory of its own: over 255 bytes encoded is refused too.
    const longDb = parseError(minimal.replace('- name: app', `- name: ${'d'.repeat(256)}`));
    expect(longDb.message).toMatch(/^c\.yaml: databases\[0\]\.name: the archive directory of database d+… would be named with 256 bytes/);
    // ASCII names at PostgreSQL's 63-byte limit fit.
    expect(() => parseConfig(long.replace('ü'.repeat(31), 'u'.repeat(63)).replace('é'.repeat(31), 'e'.repeat(63)), 'c.yaml', {})).not.toThrow();
  });

  it('rejects both s3 and local', () => {
    const error = parseError(`s3:\n  bucket: audit-archive\n${minimal}`);
    expect(error.message).toBe('c.yaml: expected exactly one of `s3:` or `local:`, found both');
  });

  it.each(['GLACIER', 'DEEP_ARCHIVE'])('refuses storage_class %s: its objects cannot be read back to verify them before delete', (cls) => {
    const error = parseError(minimal.replace('local:\n  path: ./archive', `s3:\n  bucket: abc\n  storage_class: ${cls}`));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('s3.storage_class');
    expect(error.message).toContain('GLACIER_IR');
    expect(parseConfig(minimal.replace('local:\n  path: ./archive', 's3:\n  bucket: abc\n  storage_class: GLACIER_IR'), 'c.yaml', {}).s3?.storage_class).toBe('GLACIER_IR');
  });

  it.each([
    ['/archives/', 'it starts with "/"'],
    ['/', 'it is only "/" (leave the prefix empty'],
    ['a//b/', 'empty path segment'],
    ['a/../b/', 'a ".." path segment'],
    ['./a/', 'a "." path segment'],
    ['a\\\\b/', 'backslash'],
  ])('refuses s3.prefix %j, which every storage request would refuse at run time', (prefix, problem) => {
    const error = parseError(minimal.replace('local:\n  path: ./archive', `s3:\n  bucket: abc\n  prefix: "${prefix}"`));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toContain('s3.prefix: expected a relative key prefix like "archives/"');
    expect(error.message).toContain(problem);
  });

  it('accepts an s3.prefix of several segments, with spaces or non-ASCII characters', () => {
    for (const prefix of ['', 'archives/', 'team/audit log/', 'ärchiv/2024/']) {
      expect(parseConfig(minimal.replace('local:\n  path: ./archive', `s3:\n  bucket: abc\n  prefix: "${prefix}"`), 'c.yaml', {}).s3?.prefix).toBe(prefix);
    }
  });

  it('rejects an endpoint without http(s) scheme (minio:9000 would parse as a URL)', () => {
    const error = parseError(minimal.replace('local:\n  path: ./archive', 's3:\n  bucket: abc\n  endpoint: minio:9000'));
    expect(error.message).toBe('c.yaml: s3.endpoint: expected an http:// or https:// URL, found "minio:9000"');
    expect(parseConfig(minimal.replace('local:\n  path: ./archive', 's3:\n  bucket: abc\n  endpoint: http://127.0.0.1:9000'), 'c.yaml', {}).s3?.endpoint).toBe(
      'http://127.0.0.1:9000',
    );
  });

  it('requires access_key_id and secret_access_key together', () => {
    const error = parseError(minimal.replace('local:\n  path: ./archive', 's3:\n  bucket: abc\n  access_key_id: AKIAONLY'));
    expect(error.message).toBe(
      'c.yaml: s3.secret_access_key: access_key_id and secret_access_key must be set together (or both left out to use the AWS credential chain)',
    );
    expect(error.message).not.toContain('AKIAONLY');
  });

  // Found in review: with local_fallback_dir equal to local.path, a replay of the "spool" deleted
  // every committed .metadata.json sidecar of the archive.
  it.each([
    ['./archive', 'is the same directory as'],
    ['./archive/', 'is the same directory as'],
    [`${process.cwd()}/archive`, 'is the same directory as'],
    ['./archive/spool', 'is inside'],
    ['.', 'contains'],
  ])('refuses local_fallback_dir %s overlapping local.path ./archive', (dir, why) => {
    const error = parseError(`local_fallback_dir: ${dir}\n${minimal}`);
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain('local_fallback_dir');
    expect(error.message).toContain(why);
    expect(error.message).toContain(`local.path (${join(process.cwd(), 'archive')})`);
  });

  it('accepts local_fallback_dir next to local.path, including a sibling whose name starts the same', () => {
    for (const dir of ['./spool', './archive-spool', '../archive']) {
      expect(parseConfig(`local_fallback_dir: ${dir}\n${minimal}`, 'c.yaml', {}).local_fallback_dir).toBe(dir);
    }
  });
});

describe('parseConfig: environment', () => {
  it('expands ${VAR} and ${VAR:-default}', () => {
    const text = minimal
      .replace('path: ./archive', 'path: ${ARCHIVE_DIR:-/var/lib/auditlog archive}')
      .replace('url: postgresql://localhost/app', 'url: ${APP_DATABASE_URL}');
    const config = parseConfig(text, 'c.yaml', { APP_DATABASE_URL: 'postgresql://u:pw@db/app' });
    expect(config.local?.path).toBe('/var/lib/auditlog archive');
    expect(config.databases[0]?.url).toBe('postgresql://u:pw@db/app');
  });

  it('reports a missing variable with its line', () => {
    const text = minimal.replace('url: postgresql://localhost/app', 'url: ${APP_DATABASE_URL}');
    const error = parseError(text);
    expect(error.code).toBe('CONFIG_ENV_MISSING');
    expect(error.message).toBe(
      'c.yaml:5: environment variable APP_DATABASE_URL is not set (set it, or write ${APP_DATABASE_URL:-default})',
    );
  });

  it('never reads process.env itself', () => {
    process.env.AUDITLOG_TEST_ONLY_IN_PROCESS_ENV = 'x';
    try {
      const text = minimal.replace('path: ./archive', 'path: ${AUDITLOG_TEST_ONLY_IN_PROCESS_ENV}');
      expect(parseError(text).code).toBe('CONFIG_ENV_MISSING');
    } finally {
      delete process.env.AUDITLOG_TEST_ONLY_IN_PROCESS_ENV;
    }
  });

  it('cannot inject keys or break structure through an environment value', () => {
    // A URL (a database url must parse as one) carrying a quote, newlines and key-like text.
    const injected = 'postgres://h/app?x="\nfoo: bar\n    tables: []\n ';
    const text = minimal.replace('url: postgresql://localhost/app', 'url: ${APP_DATABASE_URL}').replace('path: ./archive', 'path: "${DIR}"');
    const config = parseConfig(text, 'c.yaml', { APP_DATABASE_URL: injected, DIR: `x"\nfoo: bar` });
    expect(config.databases[0]?.url).toBe(injected);
    expect(config.databases[0]?.tables).toHaveLength(1);
    expect(config.local?.path).toBe('x"\nfoo: bar');
    expect(Object.keys(config)).not.toContain('foo');
    expect(Object.keys(config.databases[0] ?? {})).not.toContain('foo');
  });

  describe('typing of whole-placeholder values', () => {
    const hostForm = (port: string, extra = '') =>
      withDatabase(`  - name: app
    host: db.internal
    port: ${port}
    user: archiver
    password: \${PGPASSWORD}
    dbname: app${extra}
    tables: [{ name: audit_log, timestamp_column: created_at }]
`);

    it('turns an integer into a number where the schema expects one, quoted or not', () => {
      expect(parseConfig(hostForm('${PGPORT}'), 'c.yaml', { PGPORT: '5433', PGPASSWORD: 'x' }).databases[0]?.port).toBe(5433);
      expect(parseConfig(hostForm('"${PGPORT}"'), 'c.yaml', { PGPORT: '5433', PGPASSWORD: 'x' }).databases[0]?.port).toBe(5433);
      expect(parseConfig(hostForm('${PGPORT:-5432}'), 'c.yaml', { PGPASSWORD: 'x' }).databases[0]?.port).toBe(5432);
    });

    it('keeps strings where the schema expects strings, even if they look like numbers', () => {
      const config = parseConfig(hostForm('5432'), 'c.yaml', { PGPASSWORD: '123456' });
      expect(config.databases[0]?.password).toBe('123456');
      const bucket = parseConfig(minimal.replace('local:\n  path: ./archive', 's3:\n  bucket: ${BUCKET}'), 'c.yaml', { BUCKET: '12345' });
      expect(bucket.s3?.bucket).toBe('12345');
    });

    it('turns YAML 1.2 booleans into booleans where the schema expects one', () => {
      const env = { PGPASSWORD: 'x', SSL: 'TRUE' };
      expect(parseConfig(hostForm('5432', '\n    ssl: ${SSL}'), 'c.yaml', env).databases[0]?.ssl).toBe(true);
      expect(parseConfig(hostForm('5432', '\n    ssl: ${SSL}'), 'c.yaml', { ...env, SSL: 'false' }).databases[0]?.ssl).toBe(false);
      const error = parseError(hostForm('5432', '\n    ssl: ${SSL}'), { ...env, SSL: 'yes' });
      expect(error.message).toBe('c.yaml: databases[0].ssl: expected true or false, found "yes" (from "${SSL}")');
    });

    it('reports a non-integer with the placeholder it came from', () => {
      const error = parseError(hostForm('${PGPORT}'), { PGPORT: '54a', PGPASSWORD: 'x' });
      expect(error.message).toBe('c.yaml: databases[0].port: expected an integer from 1 to 65535, found "54a" (from "${PGPORT}")');
    });

    it('does not coerce partial placeholders or literal quoted values', () => {
      expect(parseError(hostForm('5${P}'), { P: '432', PGPASSWORD: 'x' }).message).toBe(
        'c.yaml: databases[0].port: expected an integer from 1 to 65535, found "5432" (from "5${P}")',
      );
      expect(parseError(hostForm('"5432"'), { PGPASSWORD: 'x' }).message).toBe(
        'c.yaml: databases[0].port: expected an integer from 1 to 65535, found "5432"',
      );
    });
  });
});

describe('parseConfig: databases and tables', () => {
  it('refuses a legal hold whose table can name no table (blank, `public.`): it would hold nothing (found by probing)', () => {
    for (const table of ['" "', 'public.', '"\\"unterminated"']) {
      const error = parseError(`${minimal}legal_holds:\n  holds:\n    - table: ${table}\n      reason: Case 7\n`);
      expect(error.code, table).toBe('CONFIG_INVALID');
      expect(error.message, table).toContain('legal_holds.holds[0].table');
      expect(error.message, table).toContain('expected the held table as name or schema.name');
    }
    expect(() => parseConfig(`${minimal}legal_holds:\n  holds:\n    - table: public.audit_log\n      reason: Case 7\n`, 'c.yaml', {})).not.toThrow();
  });

  it('accepts a composite primary key and a single one', () => {
    const config = parseConfig(
      minimal.replace('timestamp_column: created_at', 'timestamp_column: created_at\n        primary_key: [tenant_id, id]'),
      'c.yaml',
      {},
    );
    expect(config.databases[0]?.tables[0]?.primary_key).toEqual(['tenant_id', 'id']);
    const single = parseConfig(minimal.replace('timestamp_column: created_at', 'timestamp_column: created_at\n        primary_key: id'), 'c.yaml', {});
    expect(single.databases[0]?.tables[0]?.primary_key).toBe('id');
  });

  it('rejects a primary key column listed twice, and an empty list', () => {
    const twice = parseError(minimal.replace('timestamp_column: created_at', 'timestamp_column: created_at\n        primary_key: [id, tenant_id, id]'));
    expect(twice.message).toBe('c.yaml: databases[0].tables[0].primary_key[2]: column id is listed twice');
    const empty = parseError(minimal.replace('timestamp_column: created_at', 'timestamp_column: created_at\n        primary_key: []'));
    expect(empty.message).toBe('c.yaml: databases[0].tables[0].primary_key: expected a non-empty string or a non-empty list, found an empty list');
  });

  it('accepts the host/port/user/password/dbname form', () => {
    const config = parseConfig(
      withDatabase(`  - name: app
    host: db.internal
    port: 5432
    user: archiver
    password: pw
    dbname: app
    ssl: true
    tables: [{ name: audit_log, timestamp_column: created_at }]
`),
      'c.yaml',
      {},
    );
    expect(config.databases[0]).toMatchObject({ host: 'db.internal', port: 5432, user: 'archiver', password: 'pw', dbname: 'app', ssl: true });
    expect(config.databases[0]?.url).toBeUndefined();
  });

  it('rejects url together with any discrete connection field', () => {
    const withHost = parseError(minimal.replace('url: postgresql://localhost/app', 'url: postgresql://localhost/app\n    host: other'));
    expect(withHost.message).toBe('c.yaml: databases[0].host: set either `url` or host/port/user/password/dbname, not both');
    const withPassword = parseError(minimal.replace('url: postgresql://localhost/app', 'url: postgresql://localhost/app\n    password: pw'));
    expect(withPassword.message).toBe('c.yaml: databases[0].password: set either `url` or host/port/user/password/dbname, not both');
  });

  // Found by probing: these passed `config validate` and failed (or connected elsewhere) at run time.
  it.each([
    ['a raw "#" and ":" in the password', 'postgresql://u:p@ss:w/o%rd#x@db.internal/app', 'expected a PostgreSQL connection URL that parses'],
    ['a libpq keyword string', 'host=db.internal password=hunter22 dbname=app', 'expected a postgres:// connection URL, found no scheme'],
    ['another scheme', 'mysql://u:hunter22@db.internal/app', 'expected a postgres:// or postgresql:// URL, found the scheme "mysql"'],
    ['a fragment', 'postgres://u:pw@db.internal/app#x', 'the URL has a "#" fragment'],
  ])('rejects a url the driver would misread: %s, naming the fix and never the password', (_name, url, expected) => {
    const error = parseError(minimal.replace('url: postgresql://localhost/app', `url: "${url}"`));
    expect(error.message).toContain(`c.yaml: databases[0].url: ${expected}`);
    expect(error.message).toContain('percent-encoded (@ %40, : %3A, / %2F, # %23');
    expect(error.message).not.toContain('hunter22');
    expect(error.message).not.toContain('o%rd');
  });

  it('accepts percent-encoded passwords, socket paths, socket: URLs, an empty host with ?host=, IPv6 hosts', () => {
    // The forms node-postgres reads (found in review: the first check refused the user@/db?host= one).
    const forms = [
      'postgres://u:p%40ss%3Aw%2Fo%25rd%23x@db.internal:5433/app?sslmode=disable',
      '/var/run/postgresql app',
      'socket:/var/run/postgresql?db=app',
      'postgres://archiver@/app?host=/var/run/postgresql',
      'postgres://archiver:pw@/app?host=/var/run/postgresql',
      'postgres:///app?host=/tmp',
      'postgresql://[::1]:5432/app',
      'postgres://u:pa ss@db.internal/app',
    ];
    for (const url of forms) {
      expect(parseConfig(minimal.replace('url: postgresql://localhost/app', `url: "${url}"`), 'c.yaml', {}).databases[0]!.url).toBe(url);
    }
  });

  it('requires url or host', () => {
    const error = parseError(minimal.replace('    url: postgresql://localhost/app\n', ''));
    expect(error.message).toBe('c.yaml: databases[0].url: expected `url` or `host` (with user/dbname)');
  });

  it('detects a table listed twice, counting the default schema', () => {
    const error = parseError(
      withDatabase(`  - name: app
    url: postgresql://localhost/app
    tables:
      - { name: audit_log, timestamp_column: created_at }
      - { name: audit_log, schema: public, timestamp_column: created_at }
`),
    );
    expect(error.message).toBe('c.yaml: databases[0].tables[1].name: table public.audit_log is listed twice');
  });

  it('accepts tables whose dotted names coincide: they are different tables with different archive prefixes', () => {
    // Once refused here (they shared `app/a.b.c/`), which sent operators to two configurations —
    // where nothing caught it and one table's reconciliation lost the other's rows (found by
    // probing). Schema dots are now escaped: `app/a%2Eb.c/` and `app/a.b.c/`.
    const config = parseConfig(
      withDatabase(`  - name: app
    url: postgresql://localhost/app
    tables:
      - { schema: a.b, name: c, timestamp_column: t }
      - { schema: a, name: b.c, timestamp_column: t }
`),
      'c.yaml',
      {},
    );
    expect(config.databases[0]!.tables.map((t) => [t.schema, t.name])).toEqual([['a.b', 'c'], ['a', 'b.c']]);
  });

  it('detects a database name used twice', () => {
    const db = `  - name: app\n    url: postgresql://localhost/app\n    tables: [{ name: t, timestamp_column: c }]\n`;
    expect(parseError(withDatabase(db + db)).message).toBe('c.yaml: databases[1].name: database name app is used twice');
  });

  it('detects a duplicate YAML key as a syntax error with line and column', () => {
    const error = parseError(minimal.replace('    url: postgresql://localhost/app\n', '    url: postgresql://localhost/app\n    url: postgresql://other/app\n'));
    expect(error.code).toBe('CONFIG_PARSE');
    expect(error.message).toBe('c.yaml:6:5: invalid YAML: Map keys must be unique');
    expect(error.details).toMatchObject({ file: 'c.yaml', line: 6, column: 5 });
  });

  it('counts identifier length in bytes, as PostgreSQL does', () => {
    const error = parseError(minimal.replace('name: audit_log', `name: ${'é'.repeat(32)}`));
    expect(error.message).toBe('c.yaml: databases[0].tables[0].name: at most 63 bytes: PostgreSQL truncates longer identifiers');
    expect(parseConfig(minimal.replace('name: audit_log', `name: ${'a'.repeat(63)}`), 'c.yaml', {}).databases[0]?.tables[0]?.name).toHaveLength(63);
  });
});

describe('parseConfig: error messages', () => {
  const twoTables = (retention: string) =>
    withDatabase(`  - name: app
    url: postgresql://localhost/app
    tables:
      - name: a
        timestamp_column: created_at
      - name: b
        timestamp_column: created_at
        retention_days: ${retention}
`);

  it('names the exact path, the expectation and the value found', () => {
    const error = parseError(twoTables('-3'));
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.exitCode).toBe(2);
    expect(error.message).toBe('c.yaml: databases[0].tables[1].retention_days: expected an integer from 1 to 100000, found -3');
    expect(error.details).toEqual({
      file: 'c.yaml',
      issues: ['databases[0].tables[1].retention_days: expected an integer from 1 to 100000, found -3'],
      paths: ['databases[0].tables[1].retention_days'],
    });
  });

  it('lists every issue, one line each, the first line useful on its own', () => {
    const text = `local:
  path: ./archive
defaults:
  batch_size: 0
  compression_level: 10
databases:
  - name: app
    url: postgresql://localhost/app
    tabels: []
    tables:
      - name: a
        timestamp_column: 7
        retentionDays: 3
      - name: b
`;
    const error = parseError(text);
    expect(error.message.split('\n')).toEqual([
      'c.yaml: defaults.batch_size: expected an integer from 1 to 1000000, found 0',
      'c.yaml: defaults.compression_level: expected an integer from 1 to 9 (gzip levels), found 10',
      'c.yaml: databases[0].tables[0].timestamp_column: expected a non-empty string, found 7',
      'c.yaml: databases[0].tables[0].retentionDays: unknown key (did you mean "retention_days"?)',
      'c.yaml: databases[0].tables[1].timestamp_column: missing required key (expected a non-empty string)',
      'c.yaml: databases[0].tabels: unknown key (did you mean "tables"?)',
    ]);
    expect(error.details.issues).toHaveLength(6);
  });

  it('says "unknown key" without a guess when nothing is close', () => {
    expect(parseError(`${minimal}color: blue\n`).message).toBe('c.yaml: color: unknown key');
  });

  it('describes empty values, lists and mappings where scalars were expected', () => {
    const error = parseError(`s3:\ndatabases:\n  - name: [a]\n    url: {x: 1}\n    tables: {}\n`);
    expect(error.message.split('\n')).toEqual([
      'c.yaml: s3: expected a mapping, found an empty value',
      'c.yaml: databases[0].name: expected a string, found a list of 1 item',
      'c.yaml: databases[0].url: expected a non-empty string, found a mapping',
      'c.yaml: databases[0].tables: expected a non-empty list, found a mapping',
    ]);
  });

  it('reports YAML syntax errors with file:line:col', () => {
    const error = parseError('local:\n  path: ./a\ndatabases:\n  - name: app\n    url: postgresql://x: y\n');
    expect(error.code).toBe('CONFIG_PARSE');
    expect(error.message).toBe('c.yaml:5:10: invalid YAML: Nested mappings are not allowed in compact mappings');
    expect(error.details).toMatchObject({ file: 'c.yaml', line: 5, column: 10 });
  });

  it('reports an empty file', () => {
    const error = parseError('# nothing yet\n');
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.message).toMatch(/^c\.yaml: the file is empty: expected a mapping with `databases:`/);
  });

  it('reads merge keys (`<<: *anchor`), the keys written beside them winning', () => {
    const config = parseConfig(
      withDatabase(`  - name: app
    url: postgresql://localhost/app
    tables:
      - &base { name: a, timestamp_column: created_at, retention_days: 30 }
      - <<: *base
        name: b
`),
      'c.yaml',
      {},
    );
    expect(config.databases[0]!.tables.map((t) => [t.name, t.timestamp_column, t.retention_days])).toEqual([['a', 'created_at', 30], ['b', 'created_at', 30]]);
  });

  it('survives self-referencing aliases', () => {
    expect(parseError(`${minimal}loop: &l [*l]\n`).message).toBe('c.yaml: loop: unknown key');
  });
});

describe('parseConfig: secrets never appear in errors', () => {
  const secret = 'S3cr3t-Pa55w0rd';

  it('masks a secret key value reported as invalid', () => {
    const error = parseError(minimal.replace('url: postgresql://localhost/app', 'host: h\n    password: [S3cr3t-Pa55w0rd]'));
    expect(error.message).toBe('c.yaml: databases[0].password: expected a string, found ****');
    expect(JSON.stringify(error)).not.toContain(secret);
  });

  it('masks the password of a URL shown as a found value', () => {
    const text = minimal.replace('path: ./archive', 'path: ./archive\napplication_name: ${APP_DATABASE_URL}');
    const url = `postgresql://archiver:${secret}@db.internal:5432/app_with_a_long_name_to_pass_sixty_three_chars`;
    const error = parseError(text, { APP_DATABASE_URL: url });
    expect(error.message).toContain('application_name');
    expect(error.message).toContain('archiver:****@db.internal');
    expect(error.message).not.toContain(secret);
  });

  it('masks a secret reused as a non-secret value', () => {
    const text = minimal.replace('name: app', 'name: ${DB_NAME}').replace('url: postgresql://localhost/app', 'host: h\n    password: ${PGPASSWORD}');
    const error = parseError(text, { DB_NAME: 'pass word', PGPASSWORD: 'pass word' });
    expect(error.message).toBe(
      'c.yaml: databases[0].name: expected letters, digits, "_", "-" or "." (it becomes part of object keys), found "****" (from "${DB_NAME}")',
    );
  });

  it.each(['slack', 'teams', 'webhook'])('masks a webhook URL written as the default of ${VAR:-default} (%s)', (channel) => {
    const token = 'https://hooks.slack.com/services/T0AAA/B0BBB/RealT0kenXYZ';
    const text = `${minimal}notifications:\n  ${channel}:\n    webhook_url: \${HOOK_URL:-${token}}\n`;
    const error = parseError(text, { HOOK_URL: 'hooks.slack.com/x' });
    expect(error.message).toBe(`c.yaml: notifications.${channel}.webhook_url: expected an http:// or https:// URL, found **** (from "\${HOOK_URL:-****}")`);
    expect(JSON.stringify({ message: error.message, details: error.details })).not.toMatch(/RealT0kenXYZ|T0AAA|B0BBB/);
  });

  it('masks the password of a URL written as the default of ${VAR:-default} under a non-secret key', () => {
    const text = minimal.replace('local:\n  path: ./archive', `s3:\n  bucket: abc\n  endpoint: \${S3_ENDPOINT:-http://minio:${secret}@minio:9000}`);
    const error = parseError(text, { S3_ENDPOINT: 'minio:9000' });
    expect(error.message).toBe('c.yaml: s3.endpoint: expected an http:// or https:// URL, found "minio:9000" (from "${S3_ENDPOINT:-http://minio:****@minio:9000}")');
    expect(error.message).not.toContain(secret);
  });

  // yaml quotes the refused text in some messages: an unquoted password starting with `|`, `>`,
  // `!x!` or `*` was printed with them.
  it.each([`|${secret}`, `>${secret}`, `!a!${secret}`, `*${secret}`])('keeps a password the YAML parser refuses out of its error (%s)', (written) => {
    const error = parseError(minimal.replace('url: postgresql://localhost/app', `host: h\n    password: ${written}`));
    expect(error.code).toBe('CONFIG_PARSE');
    expect(error.message).toMatch(/^c\.yaml:6:\d+: invalid YAML: /);
    expect(JSON.stringify({ message: error.message, details: error.details })).not.toContain(secret);
  });

  it.each([[`!${secret}`], [`!${secret} tail`], ['!!float abc'], [`!!${secret}`], [`!${secret}!`], [`!<${secret}> x`]])('refuses a tag YAML does not know rather than loading the text after it, without quoting it (%s)', (written) => {
    const error = parseError(minimal.replace('url: postgresql://localhost/app', `host: h\n    password: ${written}`));
    expect(error.code).toBe('CONFIG_PARSE');
    expect(error.message).toMatch(/^c\.yaml:6:15: invalid YAML: a tag YAML does not know \(quote a value that starts with "!"\)( \(and 1 more YAML errors\))?$/);
    expect(error.message).not.toContain(secret);
  });

  it('keeps a password with a backslash out of the error about its escape', () => {
    const error = parseError(minimal.replace('url: postgresql://localhost/app', 'host: h\n    password: "C0rp\\User2024Secret"'));
    expect(error.message).toBe('c.yaml:6:20: invalid YAML: invalid escape sequence in a double-quoted value (write \\\\ for a backslash, or use single quotes)');
  });

  it('keeps secrets out of syntax and environment errors', () => {
    const syntax = parseError(`local: {path: x}\ndatabases:\n  - name: a\n    password: "${secret}\n`);
    expect(syntax.code).toBe('CONFIG_PARSE');
    expect(syntax.message).not.toContain(secret);
    const env = parseError(minimal.replace('url: postgresql://localhost/app', 'url: postgresql://u:${PGPASSWORD}@h/${DB}'), { PGPASSWORD: secret });
    expect(env.code).toBe('CONFIG_ENV_MISSING');
    expect(JSON.stringify({ message: env.message, details: env.details })).not.toContain(secret);
  });
});

describe('loadConfig', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'auditlog-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads and parses a file', async () => {
    const file = join(dir, 'ok.yaml');
    await writeFile(file, minimal.replace('url: postgresql://localhost/app', 'url: ${URL}'));
    const config = await loadConfig(file, { URL: 'postgresql://db/app' });
    expect(config.databases[0]?.url).toBe('postgresql://db/app');
  });

  it('names the file in every error', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, minimal.replace('timestamp_column: created_at', 'timestamp_column: ""'));
    await expect(loadConfig(file, {})).rejects.toThrow(`${file}: databases[0].tables[0].timestamp_column: expected a non-empty string, found ""`);
  });

  it('reports a missing file as CONFIG_NOT_FOUND naming the path', async () => {
    const file = join(dir, 'missing.yaml');
    const error: unknown = await loadConfig(file, {}).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(AuditlogError);
    expect(error).toMatchObject({ code: 'CONFIG_NOT_FOUND', details: { file, path: file } });
    expect((error as AuditlogError).message).toMatch(new RegExp(`^config file ${file} not found`));
    expect((error as AuditlogError).exitCode).toBe(2);
  });

  it('refuses a file that is not UTF-8, naming the line, rather than reading its bytes as U+FFFD', async () => {
    const file = join(dir, 'latin1.yaml');
    // `café` in Latin-1: read leniently, the path became `caf\uFFFD` without a word.
    const text = minimal.replace('./archive', './caf\u00e9');
    await writeFile(file, Buffer.from(text, 'latin1'));
    const error: unknown = await loadConfig(file, {}).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONFIG_PARSE', details: { file, line: 2 } });
    expect((error as AuditlogError).message).toBe(`${file}:2: the file is not valid UTF-8 (saved as Latin-1 or another legacy encoding?): save it as UTF-8`);
    // The same text in UTF-8, with a byte order mark, loads.
    await writeFile(file, `\uFEFF${text}`);
    expect((await loadConfig(file, {})).local?.path).toBe('./caf\u00e9');
  });

  it('reports a directory as unreadable', async () => {
    const error: unknown = await loadConfig(dir, {}).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'CONFIG_NOT_FOUND' });
    expect((error as AuditlogError).message).toBe(`config file ${dir} cannot be read: it is a directory (${dir})`);
  });
});

/** Values the schema must refuse at load: accepted, they would only fail later, inside the daemon or a run. */
describe('parseConfig: values that would fail at run time', () => {
  it('max_batch_size below the batch_size in force is refused where it is set, not raised to it without a word', () => {
    // Found by probing: batch_size 5000 with max_batch_size 100 loaded, and the run used 5000.
    const withDefaults = (defaults: string, table = ''): string =>
      withDatabase(`  - name: app\n    url: postgresql://localhost/app\n    tables:\n      - name: audit_log\n        timestamp_column: created_at\n${table}`).replace('databases:', `defaults:\n${defaults}databases:`);
    const own = parseError(withDefaults('  batch_size: 5000\n  max_batch_size: 100\n'));
    expect(own.code).toBe('CONFIG_INVALID');
    expect(own.message).toBe('c.yaml: defaults.max_batch_size: 100 is below batch_size (5000, from defaults), where the adaptive sizing starts, so it would be raised to it: lower batch_size too, or raise max_batch_size');
    // Against the default batch_size (10,000) too.
    expect(parseError(withDefaults('  max_batch_size: 5000\n')).details.paths).toEqual(['defaults.max_batch_size']);
    // A table's own cap under the batch_size it inherits; a table's own batch_size over the cap it inherits.
    expect(parseError(withDefaults('  batch_size: 500\n', '        max_batch_size: 100\n')).message).toMatch(/databases\[0\]\.tables\[0\]\.max_batch_size: 100 is below batch_size \(500, from defaults\)/);
    expect(parseError(withDefaults('  batch_size: 500\n  max_batch_size: 800\n', '        batch_size: 1000\n')).message).toMatch(/databases\[0\]\.tables\[0\]\.batch_size: 1000 is above defaults\.max_batch_size \(800\), which would be raised to it: lower batch_size, or set max_batch_size for this table$/);
    // Consistent settings load; min_batch_size above batch_size stays a floor that batch_size lowers (its default is 1,000).
    expect(parseConfig(withDefaults('  batch_size: 500\n  max_batch_size: 800\n', '        batch_size: 700\n        max_batch_size: 700\n'), 'c.yaml', {}).databases[0]!.tables[0]!.max_batch_size).toBe(700);
    expect(parseConfig(withDefaults('  batch_size: 500\n'), 'c.yaml', {}).defaults.min_batch_size).toBe(1_000);
  });

  it('daemon.schedule is read by the daemon\'s own cron parser: invalid or never firing is refused, naming the key', () => {
    const withSchedule = (schedule: string): string => `${minimal}daemon:\n  schedule: ${JSON.stringify(schedule)}\n`;
    const bogus = parseError(withSchedule('bogus cron'));
    expect(bogus.code).toBe('CONFIG_INVALID');
    expect(bogus.exitCode).toBe(2);
    expect(bogus.message).toMatch(/^c\.yaml: daemon\.schedule: "bogus cron" is not a valid cron expression: .* \(e\.g\. "0 2 \* \* \*" for 02:00 UTC daily\)$/);
    expect(bogus.details.paths).toEqual(['daemon.schedule']);
    const never = parseError(withSchedule('0 0 30 2 *'));
    expect(never.message).toBe('c.yaml: daemon.schedule: "0 0 30 2 *" never fires: no date matches it (e.g. day 30 of February, or a year already past), so the daemon would have nothing to run');
    expect(parseError(withSchedule('61 * * * *')).details.paths).toEqual(['daemon.schedule']);
    expect(parseConfig(withSchedule('*/2 * * * * *'), 'c.yaml', {}).daemon.schedule).toBe('*/2 * * * * *');
    expect(parseConfig(withSchedule('0 0 1 1 *'), 'c.yaml', {}).daemon.schedule).toBe('0 0 1 1 *');
  });

  it('retention_days is at most 100000 days: a few million would only fail at run time (timestamp out of range)', () => {
    const defaults = parseError(`${minimal}defaults:\n  retention_days: 2500000\n`);
    expect(defaults.exitCode).toBe(2);
    expect(defaults.message).toBe('c.yaml: defaults.retention_days: expected an integer from 1 to 100000, found 2500000');
    const table = parseError(minimal.replace('timestamp_column: created_at', 'timestamp_column: created_at\n        retention_days: 2500000'));
    expect(table.message).toBe('c.yaml: databases[0].tables[0].retention_days: expected an integer from 1 to 100000, found 2500000');
    expect(parseConfig(`${minimal}defaults:\n  retention_days: ${MAX_RETENTION_DAYS}\n`, 'c.yaml', {}).defaults.retention_days).toBe(100_000);
  });

  it('a number past 2^53 is reported as written (file or environment), in one line (found by probing: rounded, and printed twice)', () => {
    // zod reports such a number twice (outside the safe integer range, and above the maximum).
    for (const written of ['9007199254740993', '99999999999999999999']) {
      const fromEnv = parseError(`${minimal}defaults:\n  retention_days: \${RD}\n`, { RD: written });
      expect(fromEnv.message).toBe(`c.yaml: defaults.retention_days: expected an integer from 1 to 100000, found ${written} (from "\${RD}")`);
      expect(fromEnv.details.issues).toHaveLength(1);
      const inFile = parseError(`${minimal}defaults:\n  retention_days: ${written}\n`);
      expect(inFile.message).toBe(`c.yaml: defaults.retention_days: expected an integer from 1 to 100000, found ${written}`);
    }
    // Other spellings whose value reads otherwise are shown as written too.
    expect(parseError(`${minimal}defaults:\n  retention_days: 1e9\n`).message).toBe('c.yaml: defaults.retention_days: expected an integer from 1 to 100000, found 1e9');
    expect(parseError(`${minimal}defaults:\n  retention_days: \${RD}\n`, { RD: '+2500000' }).message).toBe(
      'c.yaml: defaults.retention_days: expected an integer from 1 to 100000, found +2500000 (from "${RD}")',
    );
    // Only identical lines are merged: distinct problems are all still listed.
    expect(parseError(`${minimal}defaults:\n  retention_days: 0.5\n  batch_size: -1\n`).message.split('\n')).toEqual([
      'c.yaml: defaults.retention_days: expected an integer from 1 to 100000, found 0.5',
      'c.yaml: defaults.batch_size: expected an integer from 1 to 1000000, found -1',
    ]);
  });

  it('monitoring.metrics_port and health_check_port must differ (two servers), unless 0 or one of them is off', () => {
    const monitoring = (lines: string): string => `${minimal}monitoring:\n${lines}`;
    const same = parseError(monitoring('  metrics_port: 9100\n  health_check_port: 9100\n'));
    expect(same.exitCode).toBe(2);
    expect(same.details.paths).toEqual(['monitoring.health_check_port']);
    expect(same.message).toBe(
      'c.yaml: monitoring.health_check_port: expected a port other than metrics_port (9100): /metrics and /health are separate servers and cannot share a port (or turn one off with metrics_enabled or health_check_enabled: false), found 9100',
    );
    expect(parseError(monitoring('  health_check_port: 8000\n')).details.paths).toEqual(['monitoring.health_check_port']);
    expect(parseConfig(monitoring('  metrics_port: 0\n  health_check_port: 0\n'), 'c.yaml', {}).monitoring.metrics_port).toBe(0);
    expect(parseConfig(monitoring('  metrics_port: 9100\n  health_check_port: 9100\n  health_check_enabled: false\n'), 'c.yaml', {}).monitoring.health_check_port).toBe(9100);
  });

  describe('every *_ms setting is at most 2^31-1 (PostgreSQL\'s and setTimeout\'s limit)', () => {
    const database = { name: 'app', url: 'postgresql://localhost/app', tables: [{ name: 'audit_log', timestamp_column: 'created_at' }] };
    /** A valid config with `value` at `path` (s3 storage when the path is under s3, else local). */
    const configWith = (path: string, value: number): string => {
      const doc: Record<string, unknown> = path.startsWith('s3.') ? { s3: { bucket: 'bucket' } } : { local: { path: './archive' } };
      doc.databases = [structuredClone(database)];
      const keys = path.split('.');
      let node = doc as Record<string, unknown>;
      for (const key of keys.slice(0, -1)) {
        const index = /^(\w+)\[(\d+)\]$/.exec(key);
        if (index !== null) node = (node[index[1]!] as Record<string, unknown>[])[Number(index[2])]!;
        else node = (node[key] ??= {}) as Record<string, unknown>;
      }
      node[keys[keys.length - 1]!] = value;
      return stringify(doc);
    };
    const paths = [
      'defaults.statement_timeout_ms',
      'defaults.lock_timeout_ms',
      'defaults.idle_in_transaction_session_timeout_ms',
      'defaults.target_query_time_ms',
      'defaults.pause_between_batches_ms',
      'databases[0].tables[0].target_query_time_ms',
      'databases[0].tables[0].pause_between_batches_ms',
      'lock.heartbeat_interval_ms',
      's3.request_timeout_ms',
      's3.retry.base_delay_ms',
      's3.retry.max_delay_ms',
      's3.circuit_breaker.recovery_timeout_ms',
      'local.retry.base_delay_ms',
      'local.retry.max_delay_ms',
      'local.circuit_breaker.recovery_timeout_ms',
    ];

    it.each(paths)('%s: 3000000000 is refused naming the key and the limit; 2147483647 is accepted', (path) => {
      const error = parseError(configWith(path, 3_000_000_000));
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.exitCode).toBe(2);
      expect(error.message).toBe(`c.yaml: ${path}: expected at most 2147483647 ms (~24.8 days, the longest timeout PostgreSQL and Node.js timers accept), found 3000000000`);
      expect(() => parseConfig(configWith(path, MAX_MILLISECONDS), 'c.yaml', {})).not.toThrow();
    });

    it('lock.heartbeat_timeout_ms and lock.stale_after_ms too', () => {
      const lock = (extra: string): string => `${minimal}lock:\n  heartbeat_interval_ms: 1000\n${extra}`;
      expect(parseError(lock('  stale_after_ms: 3000000000\n')).details.issues).toEqual([
        'lock.stale_after_ms: expected at most 2147483647 ms (~24.8 days, the longest timeout PostgreSQL and Node.js timers accept), found 3000000000',
      ]);
      expect(parseError(lock('  heartbeat_timeout_ms: 3000000000\n')).details.paths).toContain('lock.heartbeat_timeout_ms');
    });

    it('no *_ms key of the schema is left without that bound', () => {
      const unbounded: string[] = [];
      const visit = (node: Record<string, unknown>, at: string): void => {
        for (const [key, child] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) {
          const options = [child, ...((child.anyOf ?? []) as Record<string, unknown>[])];
          if (key.endsWith('_ms') && !options.some((o) => typeof o.maximum === 'number' && o.maximum <= MAX_MILLISECONDS)) unbounded.push(`${at}${key}`);
          for (const o of options) {
            visit(o, `${at}${key}.`);
            if (o.items !== undefined) visit(o.items as Record<string, unknown>, `${at}${key}[].`);
          }
        }
      };
      visit(z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' }) as Record<string, unknown>, '');
      expect(unbounded).toEqual([]);
    });
  });
});

describe('parseConfig: compression', () => {
  const config = (defaults: string, table: string): string =>
    `local:\n  path: ./archive\ndefaults:\n${defaults}databases:\n  - name: app\n    url: postgresql://localhost/app\n    tables:\n      - name: a\n        timestamp_column: t\n${table}`;

  it('checks compression_level against the range of the codec it is for, naming the path, the range and the value', () => {
    expect(parseError(config('  compression: zstd\n  compression_level: 20\n', '')).message).toBe('c.yaml: defaults.compression_level: expected an integer from 1 to 19 (zstd levels), found 20');
    expect(parseError(config('  compression: gzip\n', '        compression_level: 12\n')).message).toBe(
      'c.yaml: databases[0].tables[0].compression_level: expected an integer from 1 to 9 (gzip levels, the compression it inherits from defaults), found 12',
    );
    expect(parseError(config('  compression: zstd\n', '        compression: gzip\n        compression_level: 12\n')).message).toBe('c.yaml: databases[0].tables[0].compression_level: expected an integer from 1 to 9 (gzip levels), found 12');
    expect(parseError(config('  compression: lz4\n', '')).message).toBe('c.yaml: defaults.compression: expected one of "gzip", "zstd", found "lz4"');
    expect(parseError(config('  compression_level: 0\n', '')).message).toBe('c.yaml: defaults.compression_level: expected a positive integer, found 0');
    // zstd's levels are fine for a table that sets zstd under gzip defaults.
    expect(parseConfig(config('  compression: gzip\n', '        compression: zstd\n        compression_level: 19\n'), 'c.yaml', {}).databases[0]!.tables[0]).toMatchObject({ compression: 'zstd', compression_level: 19 });
  });

  it('gives each codec its own default level; a level in defaults goes with the codec set there', async () => {
    const { resolveCompression } = await import('../../src/core/compression.js');
    const parse = (defaults: string, table: string): { compression: string; level: number } => {
      const c = parseConfig(config(defaults, table), 'c.yaml', {});
      return resolveCompression(c.defaults, c.databases[0]!.tables[0]!);
    };
    expect(parse('  retention_days: 9\n', '')).toEqual({ compression: 'gzip', level: 6 });
    expect(parse('  compression: zstd\n', '')).toEqual({ compression: 'zstd', level: 1 });
    expect(parse('  compression: zstd\n  compression_level: 7\n', '')).toEqual({ compression: 'zstd', level: 7 });
    expect(parse('  compression_level: 9\n', '        compression: zstd\n')).toEqual({ compression: 'zstd', level: 1 });
    expect(parse('  compression: zstd\n  compression_level: 12\n', '        compression: gzip\n')).toEqual({ compression: 'gzip', level: 6 });
    expect(parse('  compression_level: 2\n', '        compression: gzip\n')).toEqual({ compression: 'gzip', level: 2 });
    expect(parse('  compression: zstd\n', '        compression_level: 1\n')).toEqual({ compression: 'zstd', level: 1 });
  });
});

describe('parseConfig: zstd and max_batch_bytes', () => {
  const config = (defaults: string, table: string): string =>
    `local:\n  path: ./archive\ndefaults:\n  retention_days: 30\n${defaults}databases:\n  - name: app\n    url: postgresql://localhost/app\n    tables:\n      - name: a\n        timestamp_column: t\n${table}`;
  it('refuses a zstd table whose batches could exceed what a zstd object holds (512 MiB), wherever either is set', () => {
    const big = 'max_batch_bytes: 1073741824\n';
    expect(parseError(config(`  compression: zstd\n  ${big}`, '')).message).toBe('c.yaml: defaults.max_batch_bytes: expected at most 536870912 with compression: zstd (a zstd object holds at most 512 MiB of JSON lines), found 1073741824');
    expect(parseError(config('', `        compression: zstd\n        ${big}`)).message).toMatch(/^c\.yaml: databases\[0\]\.tables\[0\]\.max_batch_bytes: expected at most 536870912 with compression: zstd/);
    expect(parseError(config('  compression: zstd\n', `        ${big}`)).message).toMatch(/^c\.yaml: databases\[0\]\.tables\[0\]\.max_batch_bytes: expected at most 536870912 with compression: zstd/);
    expect(parseError(config(`  ${big}`, '        compression: zstd\n')).message).toMatch(/^c\.yaml: databases\[0\]\.tables\[0\]\.compression: zstd needs max_batch_bytes of at most 536870912 and defaults\.max_batch_bytes is 1073741824/);
    expect(() => parseConfig(config(`  ${big}`, '        compression: zstd\n        max_batch_bytes: 536870912\n'), 'c.yaml', {})).not.toThrow();
    expect(() => parseConfig(config(`  compression: zstd\n  ${big}`, '        compression: gzip\n'), 'c.yaml', {})).toThrow();
  });
});
