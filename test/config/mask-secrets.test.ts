import { describe, expect, it } from 'vitest';
import { collectSecrets, maskConfig, maskUrl, redactSecrets, urlSecretParts } from '../../src/config/mask-secrets.js';
import { parseConfig } from '../../src/config/load-config.js';

describe('maskUrl', () => {
  it.each([
    ['postgresql://user:pass@host/db', 'postgresql://user:****@host/db'],
    ['postgres://app:s3cr%40t@db.internal:5432/app?sslmode=require', 'postgres://app:****@db.internal:5432/app?sslmode=require'],
    // Unencoded "@" and "/" in the password: everything up to the last "@" is userinfo.
    ['postgresql://u:p@ss/w@rd@host/db', 'postgresql://u:****@host/db'],
    ['http://AKIA:wJalrXUt@minio:9000', 'http://AKIA:****@minio:9000'],
    ['postgresql://host/db?user=u&password=hunter2&sslmode=require', 'postgresql://host/db?user=u&password=****&sslmode=require'],
    ['postgresql://host/db?sslpassword=keypass', 'postgresql://host/db?sslpassword=****'],
    ["host=db password='a b c' dbname=app", 'host=db password=**** dbname=app'],
    ['host=db password=hunter2 dbname=app', 'host=db password=**** dbname=app'],
  ])('masks %s', (url, masked) => {
    expect(maskUrl(url)).toBe(masked);
  });

  it.each([
    'postgresql://user@host/db',
    'postgresql://host:5432/db',
    'http://127.0.0.1:9000',
    'user:pass@host',
    'audit_log',
    '',
  ])('leaves %s unchanged (no password in it)', (text) => {
    expect(maskUrl(text)).toBe(text);
  });
});

describe('redactSecrets', () => {
  it('replaces every occurrence of every secret', () => {
    expect(redactSecrets('auth failed for hunter2 (hunter2) key AKIA1', ['hunter2', 'AKIA1'])).toBe(
      'auth failed for **** (****) key ****',
    );
  });

  it('replaces the longer of two overlapping secrets whole', () => {
    expect(redactSecrets('token abcdef', ['abc', 'abcdef'])).toBe('token ****');
  });

  it('treats secrets literally, not as patterns, and ignores empty ones', () => {
    expect(redactSecrets('p.a*s+s a.b', ['p.a*s+s', ''])).toBe('**** a.b');
  });
});

const configText = `
s3:
  bucket: audit-archive
  endpoint: http://minio:9000
  access_key_id: AKIAEXAMPLEKEY
  secret_access_key: wJalrXUtnFEMIK7MDENG
  session_token: FwoGZXIvYXdzEXAMPLE
databases:
  - name: app
    url: postgresql://archiver:p%40ss-w0rd@db.internal:5432/app
    tables: [{ name: audit_log, timestamp_column: created_at }]
  - name: other
    host: db2
    user: archiver
    password: Tr0ub4dor-and-3
    tables: [{ name: events, timestamp_column: at }]
`;

describe('maskConfig and collectSecrets', () => {
  const config = parseConfig(configText, 'c.yaml', {});
  const secrets = ['AKIAEXAMPLEKEY', 'wJalrXUtnFEMIK7MDENG', 'FwoGZXIvYXdzEXAMPLE', 'p%40ss-w0rd', 'p@ss-w0rd', 'Tr0ub4dor-and-3'];

  it('collects every secret, URL passwords both as written and decoded', () => {
    expect([...collectSecrets(config)].sort()).toEqual([...secrets].sort());
  });

  it('masks SECRET_KEYS values and URL passwords, leaving everything else', () => {
    const masked = maskConfig(config);
    expect(masked.s3).toMatchObject({
      bucket: 'audit-archive',
      endpoint: 'http://minio:9000',
      access_key_id: '****',
      secret_access_key: '****',
      session_token: '****',
    });
    expect(masked.databases[0]?.url).toBe('postgresql://archiver:****@db.internal:5432/app');
    expect(masked.databases[1]).toMatchObject({ host: 'db2', user: 'archiver', password: '****' });
    expect(masked.defaults.retention_days).toBe(90);
  });

  it('leaves no secret anywhere in the masked output', () => {
    const printed = JSON.stringify(maskConfig(config));
    for (const secret of secrets) expect(printed).not.toContain(secret);
  });

  it('returns a deep copy and does not touch the original', () => {
    const masked = maskConfig(config);
    expect(masked).not.toBe(config);
    expect(masked.databases[1]).not.toBe(config.databases[1]);
    expect(config.databases[1]?.password).toBe('Tr0ub4dor-and-3');
    expect(config.s3?.secret_access_key).toBe('wJalrXUtnFEMIK7MDENG');
  });

  it('masks a secret key whatever the type of its value, and tolerates circular input', () => {
    const input: Record<string, unknown> = { password: 123456, nested: [{ session_token: ['tok', { a: 'deep' }] }] };
    input.self = input;
    const masked = maskConfig(input);
    expect(masked).toMatchObject({ password: '****', nested: [{ session_token: '****' }], self: '[Circular]' });
    expect(collectSecrets(input)).toEqual(['123456', 'deep', 'tok']);
  });

  it('does not collect absent or empty secrets', () => {
    expect(collectSecrets({ password: '', url: 'postgresql://u@h/db', secret_access_key: undefined })).toEqual([]);
  });
});

describe('collectSecrets: the holds API URL', () => {
  it('collects its password and its query values (a token in the query is a secret)', () => {
    const secrets = collectSecrets({ legal_holds: { api: { url: 'http://u:pw@holds.example.com/v1/holds?token=QTOKEN&v=1' } } });
    expect(secrets).toContain('pw');
    expect(secrets).toContain('QTOKEN');
    expect(secrets).not.toContain('1');
    expect(redactSecrets('GET http://u:pw@holds.example.com/v1/holds?token=QTOKEN&v=1', secrets)).not.toMatch(/QTOKEN|:pw@/);
  });

  it('is printed by maskConfig without its query or password', () => {
    const masked = maskConfig({ legal_holds: { api: { url: 'http://u:pw@holds.example.com/v1/holds?token=QTOKEN&v=1#top', timeout_ms: 5000 } } });
    expect(masked).toEqual({ legal_holds: { api: { url: 'http://u:****@holds.example.com/v1/holds?****', timeout_ms: 5000 } } });
  });
});

describe('urlSecretParts', () => {
  it('lists the URL, its path with query, userinfo and every long path segment or query value, longest first', () => {
    const parts = urlSecretParts('https://bot:pw@hooks.example.com/hook/T0KEN123?fail=1&sig=ab%2Fcdef12');
    expect(parts).toEqual(
      expect.arrayContaining(['https://bot:pw@hooks.example.com/hook/T0KEN123?fail=1&sig=ab%2Fcdef12', '/hook/T0KEN123?fail=1&sig=ab%2Fcdef12', '/hook/T0KEN123', 'T0KEN123', 'fail=1&sig=ab%2Fcdef12', 'ab%2Fcdef12', 'ab/cdef12', 'bot:pw', 'pw', 'bot']),
    );
    // Short segments are not tokens: masking them would mangle ordinary words in the answer.
    expect(parts).not.toContain('hook');
    expect(parts).not.toContain('1');
    expect(parts.map((p) => p.length)).toEqual([...parts.map((p) => p.length)].sort((a, b) => b - a));
    expect(redactSecrets('Cannot POST /hook/T0KEN123?fail=1&sig=ab%2Fcdef12 (token T0KEN123)', parts)).toBe('Cannot POST **** (token ****)');
  });

  it('gives the text alone when it is not a URL', () => {
    expect(urlSecretParts('not a url')).toEqual(['not a url']);
  });
});

describe('redactSecrets: very short secrets', () => {
  it('masks a 2-character password where it is a value: in a connection URL, after password=, as a whole token, in quotes', () => {
    const secrets = collectSecrets({ databases: [{ url: 'postgresql://archiver:pw@db.internal:5432/app' }] });
    expect(secrets).toContain('pw');
    expect(redactSecrets('connect to postgresql://archiver:pw@db.internal:5432/app failed', secrets)).toBe('connect to postgresql://archiver:****@db.internal:5432/app failed');
    expect(redactSecrets('host=db password=pw sslmode=require', ['pw'])).toBe('host=db password=**** sslmode=require');
    expect(redactSecrets('the password is pw', ['pw'])).toBe('the password is ****');
    expect(redactSecrets('{"password":"pw"} (pw)', ['pw'])).toBe('{"password":"****"} (****)');
    expect(redactSecrets('pw', ['pw'])).toBe('****');
    expect(redactSecrets('a', ['a'])).toBe('****');
  });

  it('leaves ordinary words readable: "compression" with the password "pr", "a" inside words', () => {
    expect(redactSecrets('compression: zstd; every process prints progress', ['pr'])).toBe('compression: zstd; every process prints progress');
    expect(redactSecrets('a table was archived', ['a'])).toBe('**** table was archived');
    expect(redactSecrets('übergroß pr_x xpr 2pr pr', ['pr'])).toBe('übergroß pr_x xpr 2pr ****');
  });

  it('still masks a secret of 4 characters or more inside any text', () => {
    expect(redactSecrets('compressions4cr3t and xx4cr3tyy', ['4cr3t'])).toBe('compressions**** and xx****yy');
    expect(redactSecrets('prefix-hunter2-suffix', ['hunter2', 'pr'])).toBe('prefix-****-suffix');
  });

  it('masks it after an escape too: percent-encoded URLs, \\u and \\x escapes, \\n in JSON strings (found in review)', () => {
    expect(redactSecrets('url=postgresql%3A%2F%2Fu%3Aab%40h%2Fdb', ['ab'])).toBe('url=postgresql%3A%2F%2Fu%3A****%40h%2Fdb');
    expect(redactSecrets('{"password":"\\u0022ab\\u0022"}', ['ab'])).toBe('{"password":"\\u0022****\\u0022"}');
    expect(redactSecrets('password="\\nab" \\x41ab', ['ab'])).toBe('password="\\n****" \\x41****');
    // Still only as a token: an escape before a longer word is not a secret.
    expect(redactSecrets('%3Aabout \\nabc', ['ab'])).toBe('%3Aabout \\nabc');
  });

  it('treats a short secret literally, not as a pattern', () => {
    expect(redactSecrets('a.b axb (a.b) /-', ['a.b', '/-'])).toBe('**** axb (****) ****');
  });
});
