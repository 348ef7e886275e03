/**
 * `${VAR}` / `${VAR:-default}` substitution in the configuration file. Pure.
 *
 * Expansion happens on parsed string *values* (expandEnvInDocument walks the YAML document), never on
 * the raw text: an environment value containing `:`, `#`, quotes or a newline then stays inside its
 * one value and can neither break the YAML structure nor inject keys. The price is that YAML syntax
 * applies first: inside a flow collection (`[a, b]`, `{a: b}`) a placeholder must be quoted, because
 * `{` and `}` are flow indicators there. Mapping keys are never expanded.
 *
 * Rules:
 * - `${NAME}` is the value of NAME; unset is an error (CONFIG_ENV_MISSING), set-but-empty gives "".
 * - `${NAME:-default}` gives `default` when NAME is unset or empty (as in POSIX sh). The default may be
 *   empty and may contain spaces and `:`, but not `}` and not another placeholder.
 * - `$${` is a literal `${`. Any other `$` is literal, so passwords such as `pa$$word` need no escaping.
 * - Substituted values are not expanded again: a value from the environment containing `${X}` stays as is.
 * - Anything else starting with `${` (unterminated, bad name, `${NAME-x}`, nesting) is a CONFIG_PARSE
 *   error rather than literal text, so a typo never reaches a database as a password.
 */
import { isMap, isPair, isScalar, isSeq, type Document, type LineCounter, type Node, type Scalar } from 'yaml';
import { AuditlogError } from '../core/errors.js';

export type Env = Record<string, string | undefined>;

/** The line (1-based) on which the placeholder for `variable`, at `index` in the expanded text, was written. */
export type LocateLine = (variable: string, index: number) => number;

/** A YAML scalar whose value contained at least one placeholder. */
export interface EnvExpansion {
  /** Where the value sits in the parsed document, e.g. `['databases', 0, 'port']`. */
  path: (string | number)[];
  /** The value as written in the file, before expansion (never a secret from the environment). */
  source: string;
  /** True when the value was exactly one placeholder and nothing else (see load-config's coercion). */
  whole: boolean;
  node: Scalar;
}

const PLACEHOLDER = /\$\$\{|\$\{([^}]*)\}|\$\{/g;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const WHOLE_PLACEHOLDER = /^\$\{[^}]*\}$/;

/**
 * `text` with every placeholder replaced from `env`. `file` and `locateLine` only feed error messages;
 * by default the line is counted from the start of `text`.
 */
export function expandEnv(text: string, env: Env, file: string, locateLine?: LocateLine): string {
  const lineOf: LocateLine = locateLine ?? ((_variable, index) => countLines(text, index));
  return text.replace(PLACEHOLDER, (match: string, body: string | undefined, index: number) => {
    if (match === '$${') return '${';
    if (body === undefined) {
      throw placeholderError(file, lineOf('', index), 'unterminated placeholder');
    }
    const separator = body.indexOf(':-');
    const name = separator < 0 ? body : body.slice(0, separator);
    const fallback = separator < 0 ? undefined : body.slice(separator + 2);
    if (!VARIABLE_NAME.test(name)) {
      // The text is not echoed: it may be part of a password written literally in the file.
      throw placeholderError(file, lineOf(name, index), 'invalid placeholder');
    }
    if (fallback?.includes('${')) {
      throw placeholderError(file, lineOf(name, index), `nested placeholder in the default of \${${name}:-...} is not supported`);
    }
    const value = Object.hasOwn(env, name) ? env[name] : undefined;
    if (fallback !== undefined) return value === undefined || value === '' ? fallback : value;
    if (value === undefined) {
      const line = lineOf(name, index);
      throw new AuditlogError(
        'CONFIG_ENV_MISSING',
        `${file}:${line}: environment variable ${name} is not set (set it, or write \${${name}:-default})`,
        { details: { file, line, variable: name } },
      );
    }
    return value;
  });
}

/**
 * Expands every string scalar value of `doc` in place and reports which ones held placeholders.
 * `source` is the text `doc` was parsed from, with `lineCounter` attached to that parse: together they
 * give the exact line of a placeholder even inside a multi-line scalar.
 */
export function expandEnvInDocument(
  doc: Document,
  env: Env,
  file: string,
  source: string,
  lineCounter: LineCounter,
): EnvExpansion[] {
  const expansions: EnvExpansion[] = [];
  const visit = (node: unknown, path: (string | number)[]): void => {
    if (isMap(node)) {
      for (const pair of node.items) {
        if (!isPair(pair)) continue;
        const key: unknown = isScalar(pair.key) ? pair.key.value : pair.key;
        visit(pair.value, [...path, String(key)]);
      }
    } else if (isSeq(node)) {
      node.items.forEach((item, i) => visit(item, [...path, i]));
    } else if (isScalar(node) && typeof node.value === 'string' && node.value.includes('${')) {
      const written = node.value;
      node.value = expandEnv(written, env, file, (variable) => locatePlaceholder(node, variable, source, lineCounter));
      expansions.push({ path, source: written, whole: WHOLE_PLACEHOLDER.test(written), node });
    }
    // An alias shares its anchor's node, expanded where the anchor is defined, so it needs no visit.
  };
  visit(doc.contents, []);
  return expansions;
}

function locatePlaceholder(node: Node, variable: string, source: string, lineCounter: LineCounter): number {
  const [start, end] = node.range ?? [0, 0];
  const at = source.indexOf(`\${${variable}`, start);
  return lineCounter.linePos(at >= start && at < end ? at : start).line;
}

function countLines(text: string, index: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < index; i = text.indexOf('\n', i + 1)) line += 1;
  return line;
}

function placeholderError(file: string, line: number, problem: string): AuditlogError {
  return new AuditlogError(
    'CONFIG_PARSE',
    `${file}:${line}: ${problem}: expected \${NAME} or \${NAME:-default} (write $\${ for a literal "\${")`,
    { details: { file, line } },
  );
}
