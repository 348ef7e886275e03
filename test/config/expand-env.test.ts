import { describe, expect, it } from 'vitest';
import { LineCounter, parseDocument } from 'yaml';
import { AuditlogError } from '../../src/core/errors.js';
import { expandEnv, expandEnvInDocument } from '../../src/config/expand-env.js';

function thrown(fn: () => unknown): AuditlogError {
  try {
    fn();
  } catch (error) {
    if (error instanceof AuditlogError) return error;
    throw error;
  }
  throw new Error('expected an AuditlogError');
}

describe('expandEnv', () => {
  it('replaces ${VAR} anywhere in the text, several times', () => {
    expect(expandEnv('postgresql://${U}:${P}@${H}/db', { U: 'app', P: 'pw', H: 'db.internal' }, 'c.yaml')).toBe(
      'postgresql://app:pw@db.internal/db',
    );
  });

  it('uses the default of ${VAR:-default} only when VAR is unset or empty', () => {
    expect(expandEnv('${X:-fallback}', {}, 'c.yaml')).toBe('fallback');
    expect(expandEnv('${X:-fallback}', { X: '' }, 'c.yaml')).toBe('fallback');
    expect(expandEnv('${X:-fallback}', { X: 'set' }, 'c.yaml')).toBe('set');
  });

  it('accepts an empty default and defaults with spaces, ":" and ":-"', () => {
    expect(expandEnv('[${X:-}]', {}, 'c.yaml')).toBe('[]');
    expect(expandEnv('${X:-a b: c}', {}, 'c.yaml')).toBe('a b: c');
    expect(expandEnv('${X:-http://h:9000/x:-y}', {}, 'c.yaml')).toBe('http://h:9000/x:-y');
  });

  it('gives "" for a variable set to the empty string (unset is the error, not empty)', () => {
    expect(expandEnv('a${X}b', { X: '' }, 'c.yaml')).toBe('ab');
  });

  it('writes a literal "${" for "$${" and leaves every other "$" alone', () => {
    expect(expandEnv('$${X}', { X: 'no' }, 'c.yaml')).toBe('${X}');
    expect(expandEnv('pa$$word $X $ end$', {}, 'c.yaml')).toBe('pa$$word $X $ end$');
    expect(expandEnv('$$${X}', { X: 'v' }, 'c.yaml')).toBe('$${X}');
  });

  it('does not expand placeholders that come from a substituted value', () => {
    expect(expandEnv('${A}', { A: '${B}', B: 'leak' }, 'c.yaml')).toBe('${B}');
  });

  it('reports an unset variable with file, line and the fix', () => {
    const error = thrown(() => expandEnv('a: 1\nb: 2\nurl: ${APP_DATABASE_URL}\n', {}, 'c.yaml'));
    expect(error.code).toBe('CONFIG_ENV_MISSING');
    expect(error.message).toBe(
      'c.yaml:3: environment variable APP_DATABASE_URL is not set (set it, or write ${APP_DATABASE_URL:-default})',
    );
    expect(error.details).toEqual({ file: 'c.yaml', line: 3, variable: 'APP_DATABASE_URL' });
    expect(error.exitCode).toBe(2);
  });

  it('uses the line the caller locates', () => {
    const error = thrown(() => expandEnv('${A} ${B}', { A: 'x' }, 'conf/c.yaml', (name) => (name === 'B' ? 42 : 1)));
    expect(error.message).toMatch(/^conf\/c\.yaml:42: environment variable B is not set/);
  });

  it('only looks at own environment entries, not Object.prototype', () => {
    expect(thrown(() => expandEnv('${constructor}', {}, 'c.yaml')).code).toBe('CONFIG_ENV_MISSING');
    expect(thrown(() => expandEnv('${toString}', {}, 'c.yaml')).code).toBe('CONFIG_ENV_MISSING');
  });

  it.each([
    ['${', 'unterminated placeholder'],
    ['x ${ABC', 'unterminated placeholder'],
    ['${}', 'invalid placeholder'],
    ['${1ABC}', 'invalid placeholder'],
    ['${A B}', 'invalid placeholder'],
    ['${A-default}', 'invalid placeholder'],
    ['${A:default}', 'invalid placeholder'],
    ['${A:-${B}}', 'nested placeholder in the default of ${A:-...} is not supported'],
  ])('rejects the malformed placeholder %s', (text, problem) => {
    const error = thrown(() => expandEnv(`k: v\nx: ${text}`, { A: 'a', B: 'b' }, 'c.yaml'));
    expect(error.code).toBe('CONFIG_PARSE');
    expect(error.message).toBe(
      `c.yaml:2: ${problem}: expected \${NAME} or \${NAME:-default} (write $\${ for a literal "\${")`,
    );
  });

  it('does not echo a malformed placeholder, which may be part of a literal password', () => {
    const error = thrown(() => expandEnv('p@ss${w0rd s3cret}', {}, 'c.yaml'));
    expect(error.message).not.toContain('s3cret');
  });
});

describe('expandEnvInDocument', () => {
  function expand(text: string, env: Record<string, string>) {
    const lineCounter = new LineCounter();
    const doc = parseDocument(text, { lineCounter });
    const expansions = expandEnvInDocument(doc, env, 'c.yaml', text, lineCounter);
    return { doc, expansions, value: doc.toJS() as unknown };
  }

  it('expands values, never keys, and reports each expanded value with its path', () => {
    const { value, expansions } = expand('${K}: ${V}\nlist:\n  - a${V}\n  - plain\n', { K: 'key', V: 'val' });
    expect(value).toEqual({ '${K}': 'val', list: ['aval', 'plain'] });
    expect(expansions.map((e) => ({ path: e.path, source: e.source, whole: e.whole }))).toEqual([
      { path: ['${K}'], source: '${V}', whole: true },
      { path: ['list', 0], source: 'a${V}', whole: false },
    ]);
  });

  it('keeps an environment value inside its one value: YAML syntax in it is text', () => {
    const injected = '"\nfoo: bar\n# x: y';
    const { value } = expand('bucket: ${B}\nother: 1\n', { B: injected });
    expect(value).toEqual({ bucket: injected, other: 1 });
  });

  it('reports the exact line of a missing variable, also inside multi-line scalars', () => {
    const text = 'a: 1\nb: |\n  first\n  ${NOPE}\nc: >-\n  folded\n  text ${ALSO_NOPE}\n';
    expect(thrown(() => expand(text, { ALSO_NOPE: 'x' })).message).toMatch(/^c\.yaml:4: environment variable NOPE /);
    expect(thrown(() => expand(text, { NOPE: 'x' })).message).toMatch(/^c\.yaml:7: environment variable ALSO_NOPE /);
  });

  it('expands an anchored value once and aliases see the result', () => {
    const { value, expansions } = expand('a: &x ${V}\nb: *x\n', { V: 'v' });
    expect(value).toEqual({ a: 'v', b: 'v' });
    expect(expansions).toHaveLength(1);
  });
});
