/**
 * Turns zod issues into one-line, path-first messages for people editing a YAML file:
 * `databases[0].tables[1].retention_days: expected a positive integer, found -3`. Pure.
 *
 * zod's own default messages speak about JS types ("expected number, received string"); ours are
 * generated from the schema at the issue's path instead. Messages the schema author wrote
 * (superRefine, `.min(1, '...')`) are kept. To tell the two apart, parse with `markDefaultMessages`
 * as the per-parse error map: zod uses it only where the schema gave no message of its own.
 */
import { z } from 'zod';
import { MASK, collectSecrets, maskSource, maskUrl, redactSecrets } from './mask-secrets.js';
import { SECRET_KEYS } from './schema.js';

export type ConfigPath = readonly PropertyKey[];

export interface ConfigIssue {
  /** `databases[0].tables[1].retention_days`; empty for the document root. */
  path: string;
  message: string;
}

export interface FormatConfigIssuesOptions {
  /** The value that was validated: "found" values are read from it. */
  input: unknown;
  /** The schema that produced the issues: "expected" texts and key suggestions are read from it. */
  schema: z.ZodType;
  /** Per formatted path, the text written in the file where it differs from the value (env placeholders). */
  sources?: ReadonlyMap<string, string>;
  /** Per formatted path, a number as written (file or environment) where its value reads otherwise (rounded past 2^53, `1e3`). */
  written?: ReadonlyMap<string, string>;
}

export const DEFAULT_ISSUE_MESSAGE = '\u0000auditlog:default-message';

/** Per-parse zod error map: see the module comment. */
export function markDefaultMessages(): string {
  return DEFAULT_ISSUE_MESSAGE;
}

/**
 * One ConfigIssue per problem (an issue listing several unknown keys gives one per key). Secrets
 * are masked. zod may report one value twice (a number past 2^53 breaks both the integer range and
 * the schema's maximum), and both read the same once formatted: the line is given once.
 */
export function formatConfigIssues(issues: readonly z.core.$ZodIssue[], options: FormatConfigIssuesOptions): ConfigIssue[] {
  const context: IssueContext = { ...options, secrets: collectSecrets(options.input) };
  const seen = new Set<string>();
  return issues
    .flatMap((issue) => formatIssue(issue, context))
    .filter((issue) => {
      const line = `${issue.path}\u0000${issue.message}`;
      if (seen.has(line)) return false;
      seen.add(line);
      return true;
    });
}

interface IssueContext extends FormatConfigIssuesOptions {
  secrets: string[];
}

/** `['databases', 0, 'tables']` → `databases[0].tables`; keys that are not plain words are quoted. */
export function formatConfigPath(path: ConfigPath): string {
  let text = '';
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`;
    else if (typeof key === 'string' && /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key)) text += text === '' ? key : `.${key}`;
    else text += `[${JSON.stringify(String(key))}]`;
  }
  return text;
}

/**
 * The schemas that may validate the value at `path` (several below a union), with optional/default
 * wrappers removed. Empty when the path leads nowhere in the schema (for example below an unknown key).
 */
export function findSchemasAt(schema: z.ZodType, path: ConfigPath): z.ZodType[] {
  let current = unwrap(schema);
  for (const key of path) {
    current = current.flatMap((s) => {
      if (s instanceof z.ZodObject && typeof key === 'string') {
        const shape = s.shape as Record<string, z.ZodType>;
        return Object.hasOwn(shape, key) ? unwrap(shape[key] as z.ZodType) : [];
      }
      if (s instanceof z.ZodArray && typeof key === 'number') return unwrap(s.element as z.ZodType);
      return [];
    });
  }
  return current;
}

function unwrap(schema: z.ZodType): z.ZodType[] {
  if (
    schema instanceof z.ZodOptional ||
    schema instanceof z.ZodNullable ||
    schema instanceof z.ZodDefault ||
    schema instanceof z.ZodPrefault
  ) {
    return unwrap(schema.def.innerType as z.ZodType);
  }
  if (schema instanceof z.ZodUnion) return (schema.options as z.ZodType[]).flatMap(unwrap);
  return [schema];
}

function formatIssue(issue: z.core.$ZodIssue, options: IssueContext): ConfigIssue[] {
  const path = issue.path;
  const value = valueAt(options.input, path);
  const candidates = findSchemasAt(options.schema, path);
  const at = formatConfigPath(path);
  const generated = issue.message === DEFAULT_ISSUE_MESSAGE;

  if (issue.code === 'unrecognized_keys') {
    const known = candidates.flatMap((s) => (s instanceof z.ZodObject ? Object.keys(s.shape) : []));
    return issue.keys.map((key) => {
      const suggestion = suggestKey(key, known);
      return {
        path: formatConfigPath([...path, key]),
        message: suggestion === undefined ? 'unknown key' : `unknown key (did you mean "${suggestion}"?)`,
      };
    });
  }

  const found = describeFound(value, path, at, options);
  if (!generated) {
    // Authored messages that state an expectation read well with the offending value after them.
    const withFound = issue.message.startsWith('expected') && isScalarValue(value);
    return [{ path: at, message: withFound ? `${issue.message}, found ${found}` : issue.message }];
  }
  const expected = candidates.length > 0 ? candidates.map(describeExpected).join(' or ') : 'a valid value';
  if (value === undefined) return [{ path: at, message: `missing required key (expected ${expected})` }];
  return [{ path: at, message: `expected ${expected}, found ${found}` }];
}

function valueAt(input: unknown, path: ConfigPath): unknown {
  let current = input;
  for (const key of path) {
    if (typeof current !== 'object' || current === null) return undefined;
    const record = current as Record<PropertyKey, unknown>;
    if (!Object.hasOwn(record, key)) return undefined;
    current = record[key];
  }
  return current;
}

function isScalarValue(value: unknown): boolean {
  return typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean';
}

/**
 * The offending value as shown to the user: the only place config *values* enter a message, so the
 * only place secrets are masked. Redacting known secrets here, not in the whole line, keeps a short
 * password such as "x" from mangling the rest of the message.
 */
function describeFound(value: unknown, path: ConfigPath, at: string, context: IssueContext): string {
  // Below a secret key (`session_token: ['${X:-tok}']`) everything is secret, as in collectSecrets.
  const secret = path.some((key) => typeof key === 'string' && SECRET_KEYS.has(key));
  const source = context.sources?.get(at);
  // The source shows what was written in the file: a default (`${VAR:-value}`) is as secret as the value.
  const origin = source === undefined ? '' : ` (from ${JSON.stringify(maskSource(source, secret, context.secrets))})`;
  if (secret && value !== undefined && value !== null) return `${MASK}${origin}`;
  return `${context.written?.get(at) ?? describeValue(value, context.secrets)}${origin}`;
}

function describeValue(value: unknown, secrets: readonly string[]): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'an empty value';
  if (typeof value === 'string') {
    const masked = redactSecrets(maskUrl(value), secrets);
    return JSON.stringify(masked.length > 80 ? `${masked.slice(0, 77)}...` : masked);
  }
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (Array.isArray(value)) {
    if (value.length === 0) return 'an empty list';
    return value.length === 1 ? 'a list of 1 item' : `a list of ${value.length} items`;
  }
  if (value instanceof Uint8Array) return 'binary data';
  return 'a mapping';
}

interface Bounds {
  min?: number;
  minInclusive: boolean;
  max?: number;
  maxInclusive: boolean;
  isInt: boolean;
}

function describeExpected(schema: z.ZodType): string {
  if (schema instanceof z.ZodNumber) return describeNumber(readNumberBounds(schema));
  if (schema instanceof z.ZodString) return describeString(schema);
  if (schema instanceof z.ZodBoolean) return 'true or false';
  if (schema instanceof z.ZodEnum) return `one of ${schema.options.map((o) => JSON.stringify(o)).join(', ')}`;
  if (schema instanceof z.ZodArray) return readMinLength(schema) > 0 ? 'a non-empty list' : 'a list';
  if (schema instanceof z.ZodObject) return 'a mapping';
  return 'a valid value';
}

function checkDefs(schema: z.ZodType): Record<string, unknown>[] {
  return (schema.def.checks ?? []).map((check) => check._zod.def as unknown as Record<string, unknown>);
}

function readNumberBounds(schema: z.ZodNumber): Bounds {
  const bounds: Bounds = { minInclusive: true, maxInclusive: true, isInt: schema.isInt };
  for (const def of checkDefs(schema)) {
    if (typeof def.value !== 'number') continue;
    if (def.check === 'greater_than') Object.assign(bounds, { min: def.value, minInclusive: def.inclusive === true });
    if (def.check === 'less_than') Object.assign(bounds, { max: def.value, maxInclusive: def.inclusive === true });
  }
  return bounds;
}

function describeNumber(b: Bounds): string {
  const noun = b.isInt ? 'integer' : 'number';
  // For integers an exclusive bound is an inclusive one shifted by one: `> 0` reads as "from 1".
  const min = b.min !== undefined && b.isInt && !b.minInclusive ? b.min + 1 : b.min;
  const max = b.max !== undefined && b.isInt && !b.maxInclusive ? b.max - 1 : b.max;
  const exact = b.isInt || (b.minInclusive && b.maxInclusive);
  if (min !== undefined && max !== undefined && exact) return `an ${noun} from ${min} to ${max}`;
  if (max === undefined && b.isInt && min === 1) return 'a positive integer';
  if (max === undefined && min === 0 && b.minInclusive) return `a non-negative ${noun}`;
  if (max === undefined && min === 0) return `a positive ${noun}`;
  const parts = [
    min === undefined ? undefined : `${b.minInclusive || b.isInt ? '>=' : '>'} ${min}`,
    max === undefined ? undefined : `${b.maxInclusive || b.isInt ? '<=' : '<'} ${max}`,
  ].filter((p) => p !== undefined);
  const article = b.isInt ? 'an' : 'a';
  return parts.length === 0 ? `${article} ${noun}` : `${article} ${noun} ${parts.join(' and ')}`;
}

function readMinLength(schema: z.ZodType): number {
  let min = 0;
  for (const def of checkDefs(schema)) {
    if (def.check === 'min_length' && typeof def.minimum === 'number') min = Math.max(min, def.minimum);
  }
  return min;
}

function describeString(schema: z.ZodString): string {
  if (schema.format === 'url') return 'a URL';
  const min = readMinLength(schema);
  const max = schema.maxLength;
  if (max !== null && min > 0) return `a string of ${min} to ${max} characters`;
  if (max !== null) return `a string of at most ${max} characters`;
  if (min === 1) return 'a non-empty string';
  if (min > 1) return `a string of at least ${min} characters`;
  return 'a string';
}

/** The known key `key` was most likely meant to be, if any is close enough to suggest. */
function suggestKey(key: string, known: readonly string[]): string | undefined {
  const normalized = normalizeKey(key);
  const exact = known.find((k) => normalizeKey(k) === normalized);
  if (exact !== undefined) return exact;
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate);
    if (best === undefined || distance < best.distance) best = { key: candidate, distance };
  }
  // Two edits covers transpositions and one-letter slips in the short keys of this schema without
  // suggesting unrelated keys.
  const limit = key.length <= 4 ? 1 : 2;
  return best !== undefined && best.distance <= limit ? best.key : undefined;
}

/** `retentionDays`, `retention-days` and `RETENTION_DAYS` all mean `retention_days`. */
function normalizeKey(key: string): string {
  return key.toLowerCase().replace(/[-_\s]/g, '');
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
