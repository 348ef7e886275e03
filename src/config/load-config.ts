/**
 * Reading the configuration file: YAML → `${VAR}` expansion → schema validation (DESIGN.md §3).
 * `loadConfig` does the I/O; `parseConfig` is pure and does everything else.
 *
 * Typing of placeholders: environment values are strings, but `port: ${PGPORT}` must still be a
 * number. A value written as exactly one placeholder (quoted or not) takes the type the schema expects
 * at that path: where the schema wants a number (and not a string) and the text is an integer
 * (optional sign, digits), it becomes a number; where it wants a boolean and the text is
 * true/True/TRUE/false/False/FALSE (YAML 1.2's spelling), a boolean. Everything else stays a string,
 * so a numeric password or bucket name from the environment is never turned into a number, and a
 * value like `5${X}` or literal `port: "5432"` is not coerced.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { isScalar, LineCounter, parseDocument, visit, type Document } from 'yaml';
import { z } from 'zod';
import { AuditlogError } from '../core/errors.js';
import { expandEnvInDocument, type Env, type EnvExpansion } from './expand-env.js';
import { findSchemasAt, formatConfigIssues, formatConfigPath, markDefaultMessages } from './format-config-issues.js';
import { configSchema, type Config } from './schema.js';

/**
 * Reads, expands and validates `file`. Throws AuditlogError CONFIG_NOT_FOUND / CONFIG_PARSE / CONFIG_ENV_MISSING / CONFIG_INVALID.
 * `read`: how the file's text is read (the daemon waits for a file being written to settle: read-settled-file.ts).
 */
export async function loadConfig(file: string, env: Env, read: (file: string) => Promise<string | Uint8Array> = (f) => readFile(f)): Promise<Config> {
  let content: string | Uint8Array;
  try {
    content = await read(file);
  } catch (error) {
    throw readError(file, error);
  }
  return parseConfig(typeof content === 'string' ? content : decodeUtf8(content, file), file, env);
}

/**
 * The file's bytes as UTF-8, refusing any that are not: read leniently, a Latin-1 `é` in a
 * password or a path became U+FFFD without a word, and a run connected with another password or
 * archived into another directory than the one written (found by probing).
 */
function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    // The shortest prefix that fails to decode ends on the line of the first bad sequence (with `stream`, one cut short at the end of a prefix is not an error).
    let low = 0;
    let high = bytes.length;
    while (low < high) {
      const mid = Math.floor((low + high) / 2);
      try {
        new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(0, mid + 1), { stream: true });
        low = mid + 1;
      } catch {
        high = mid;
      }
    }
    const line = bytes.subarray(0, low).filter((b) => b === 0x0a).length + 1;
    throw new AuditlogError('CONFIG_PARSE', `${file}:${line}: the file is not valid UTF-8 (saved as Latin-1 or another legacy encoding?): save it as UTF-8`, {
      details: { file, line },
    });
  }
}

/** `text` is the content of `file`; `file` only names it in messages. */
export function parseConfig(text: string, file: string, env: Env): Config {
  const lineCounter = new LineCounter();
  // `merge`: `<<: *anchor` as most YAML tools read it (a table sharing another's settings); without
  // it YAML 1.2 reads `<<` as a key, refused as "unknown key" with no word about why (found by probing).
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  // yaml only warns about a tag it does not know and keeps the text after it: an unquoted password
  // `!Hunter2` loaded as "", and `!Pa55 word` as "word" (found by probing).
  const unknownTag = doc.warnings.find((w) => w.code === 'TAG_RESOLVE_FAILED');
  const syntaxError = doc.errors[0] ?? unknownTag;
  if (syntaxError !== undefined) {
    const { line, col } = lineCounter.linePos(syntaxError.pos[0]);
    const more = doc.errors.length > 1 ? ` (and ${doc.errors.length - 1} more YAML errors)` : '';
    const problem = syntaxError.code === 'BAD_DQ_ESCAPE' ? BAD_ESCAPE : syntaxError.code === 'TAG_RESOLVE_FAILED' ? BAD_TAG : withoutQuotedText(syntaxError.message, text);
    throw new AuditlogError('CONFIG_PARSE', `${file}:${line}:${col}: invalid YAML: ${problem}${more}`, {
      details: { file, line, column: col, yamlCode: syntaxError.code },
    });
  }
  if (doc.contents === null) {
    throw new AuditlogError(
      'CONFIG_INVALID',
      `${file}: the file is empty: expected a mapping with \`databases:\` and one of \`s3:\` or \`local:\` (see docs/configuration.md)`,
      { details: { file, issues: ['the file is empty'], paths: [''] } },
    );
  }

  const expansions = expandEnvInDocument(doc, env, file, text, lineCounter);
  /** Numbers as written in the environment, where their value reads otherwise (see numbersAsWritten). */
  const written = new Map<string, string>();
  for (const expansion of expansions) {
    if (!expansion.whole) continue;
    const number = coerceToSchemaType(expansion);
    if (number !== undefined) written.set(formatConfigPath(expansion.path), number);
  }

  refuseUnresolvedAliases(doc, file, lineCounter);
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (error) {
    // yaml refuses documents whose aliases would expand exponentially ("billion laughs").
    throw new AuditlogError('CONFIG_PARSE', `${file}: invalid YAML: ${error instanceof Error ? error.message : String(error)}`, {
      details: { file },
      cause: error,
    });
  }

  const result = configSchema.safeParse(data, { error: markDefaultMessages });
  if (result.success) return result.data;

  const sources = new Map(expansions.map((e) => [formatConfigPath(e.path), e.source]));
  const issues = formatConfigIssues(result.error.issues, { input: data, schema: configSchema, sources, written: numbersAsWritten(doc, result.error.issues, sources, written) });
  const lines = issues.map((issue) => (issue.path === '' ? issue.message : `${issue.path}: ${issue.message}`));
  throw new AuditlogError('CONFIG_INVALID', lines.map((line) => `${file}: ${line}`).join('\n'), {
    details: { file, issues: lines, paths: issues.map((issue) => issue.path) },
  });
}

/** Types a whole placeholder's value for the schema; returns the text of a number it made. */
function coerceToSchemaType(expansion: EnvExpansion): string | undefined {
  const text = expansion.node.value;
  if (typeof text !== 'string') return undefined;
  const candidates = findSchemasAt(configSchema, expansion.path);
  if (candidates.some((s) => s instanceof z.ZodString)) return undefined;
  if (candidates.some((s) => s instanceof z.ZodNumber) && /^[-+]?[0-9]+$/.test(text)) {
    expansion.node.value = Number(text);
    return text;
  }
  if (candidates.some((s) => s instanceof z.ZodBoolean) && /^(?:true|True|TRUE|false|False|FALSE)$/.test(text)) {
    expansion.node.value = text.toLowerCase() === 'true';
  }
  return undefined;
}

/**
 * Per formatted path of an issue, a number as written (in the file, or in the environment) where
 * its value reads otherwise: past 2^53 a number is rounded, and `retention_days: 9007199254740993`
 * was reported as "found 9007199254740992" (found by probing); `1e3` or `+5` are shown as written too.
 */
function numbersAsWritten(doc: Document, issues: readonly z.core.$ZodIssue[], expanded: ReadonlyMap<string, string>, fromEnv: ReadonlyMap<string, string>): Map<string, string> {
  const out = new Map<string, string>();
  for (const issue of issues) {
    const at = formatConfigPath(issue.path);
    const node = doc.getIn(issue.path, true);
    if (!isScalar(node) || typeof node.value !== 'number') continue;
    // A placeholder's node keeps the placeholder as its source: the number came from the environment.
    const text = expanded.has(at) ? fromEnv.get(at) : node.source;
    if (text !== undefined && text !== String(node.value)) out.set(at, text);
  }
  return out;
}

/**
 * yaml's own message quotes the escape and up to 8 characters after it (`Invalid escape sequence
 * \User2024S`): most of a password written "C0rp\User2024Secret" (found by probing).
 */
const BAD_ESCAPE = 'invalid escape sequence in a double-quoted value (write \\\\ for a backslash, or use single quotes)';

/**
 * yaml's messages about tags quote the tag, in ways the text does not show as written (`!!Pa55` is
 * `tag:yaml.org,2002:Pa55`, `!Pa55!` "has no suffix"): an unquoted password starting with `!` (found by probing).
 */
const BAD_TAG = 'a tag YAML does not know (quote a value that starts with "!")';

/**
 * Some yaml messages end by quoting the text they refused (`Block scalar header includes extra
 * characters: |hunter2`): an unquoted password that starts with `|` or `>` was printed (found by
 * probing). The quote is cut; the line and column say where.
 */
function withoutQuotedText(message: string, text: string): string {
  const cut = message.lastIndexOf(': ');
  return cut >= 0 && text.includes(message.slice(cut + 2)) ? message.slice(0, cut) : message;
}

/**
 * `password: *hunter2` is an alias in YAML, and yaml's own error for an alias with no anchor names
 * it (`Unresolved alias ...: hunter2`) with no position: an unquoted password starting with `*` was
 * printed (found by probing). Checked here, with the line and without the name.
 */
function refuseUnresolvedAliases(doc: Document, file: string, lineCounter: LineCounter): void {
  visit(doc, {
    Alias: (_key, node) => {
      if (node.resolve(doc) !== undefined) return;
      const { line, col } = lineCounter.linePos(node.range?.[0] ?? 0);
      throw new AuditlogError(
        'CONFIG_PARSE',
        `${file}:${line}:${col}: invalid YAML: an alias (\`*name\`) with no anchor (\`&name\`) before it; quote a value that starts with \`*\``,
        { details: { file, line, column: col } },
      );
    },
  });
}

function readError(file: string, error: unknown): AuditlogError {
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : undefined;
  const path = resolve(file);
  if (code === 'ENOENT' || code === 'ENOTDIR') {
    return new AuditlogError(
      'CONFIG_NOT_FOUND',
      `config file ${file} not found (looked at ${path}): check the path, or see docs/configuration.md to write one`,
      { details: { file, path }, cause: error },
    );
  }
  const reason = code === 'EACCES' || code === 'EPERM' ? 'permission denied' : code === 'EISDIR' ? 'it is a directory' : code ?? 'unknown error';
  return new AuditlogError('CONFIG_NOT_FOUND', `config file ${file} cannot be read: ${reason} (${path})`, {
    details: { file, path, errno: code ?? null },
    cause: error,
  });
}
