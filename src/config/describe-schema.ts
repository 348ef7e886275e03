/**
 * Every key of the configuration schema as rows for docs/configuration.md: path, type, default and
 * description, read from the zod schema itself (through its JSON Schema) so the reference cannot
 * drift from what `config validate` accepts. Pure.
 */
import { z } from 'zod';

export interface KeyDoc {
  key: string;
  type: string;
  default: string;
  description: string;
  /** Anchor of the section that documents this key's own keys, when it is a mapping or a list of them. */
  section?: string;
}

export interface SectionDoc {
  /** Heading text and marker id: `top level`, `s3`, `retry`, `databases[]`, `tables[]`... */
  name: string;
  /** Where the section's keys sit: `s3.retry` and `local.retry` share one section. */
  paths: string[];
  keys: KeyDoc[];
}

interface JsonSchema {
  type?: string;
  properties?: Record<string, JsonSchema>;
  additionalProperties?: JsonSchema | boolean;
  items?: JsonSchema;
  anyOf?: JsonSchema[];
  enum?: (string | number)[];
  required?: string[];
  default?: unknown;
  description?: string;
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  minLength?: number;
  maxLength?: number;
  minItems?: number;
  pattern?: string;
  format?: string;
}

export const TOP_LEVEL = 'top level';

/** Sections in document order: the top level, then each nested mapping in the order keys appear. */
export function describeSchema(schema: z.ZodType): SectionDoc[] {
  const root = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JsonSchema;
  const sections = new Map<string, SectionDoc>();
  const visit = (node: JsonSchema, path: string, name: string): void => {
    const existing = sections.get(name);
    if (existing !== undefined) {
      existing.paths.push(path);
      return;
    }
    const section: SectionDoc = { name, paths: [path], keys: [] };
    sections.set(name, section);
    const nested: [JsonSchema, string, string][] = [];
    for (const [key, child] of Object.entries(node.properties ?? {})) {
      const object = objectOf(child);
      const childName = object === undefined ? undefined : child.type === 'array' ? `${key}[]` : key;
      section.keys.push({
        key,
        type: describeType(child, key),
        default: describeDefault(child, node.required?.includes(key) === true),
        description: child.description ?? child.items?.description ?? '',
        ...(childName === undefined ? {} : { section: childName }),
      });
      if (object !== undefined && childName !== undefined) nested.push([object, path === '' ? childName : `${path}.${childName}`, childName]);
    }
    for (const [object, childPath, childName] of nested) visit(object, childPath, childName);
  };
  visit(root, '', TOP_LEVEL);
  // A table's tunables left unset fall back to `defaults`, which JSON Schema cannot say.
  const inherited = new Set(sections.get('defaults')?.keys.map((k) => k.key));
  for (const key of sections.get('tables[]')?.keys ?? []) {
    if (key.default === '—' && inherited.has(key.key)) key.default = `\`defaults.${key.key}\``;
  }
  return [...sections.values()];
}

/** The mapping a key holds, directly or as the elements of its list. */
function objectOf(node: JsonSchema): JsonSchema | undefined {
  if (node.type === 'object' && node.properties !== undefined) return node;
  if (node.type === 'array' && node.items?.type === 'object' && node.items.properties !== undefined) return node.items;
  return undefined;
}

const UNITS: [RegExp, string][] = [
  [/_ms$/, 'ms'],
  [/_days$/, 'days'],
  [/_hours$/, 'hours'],
  [/_mb$/, 'MiB'],
  [/_per_second$/, 'requests/s'],
];

function describeType(node: JsonSchema, key: string): string {
  const unit = UNITS.find(([pattern]) => pattern.test(key))?.[1];
  const withUnit = (text: string): string => (unit === undefined ? text : `${text} (${unit})`);
  if (node.anyOf !== undefined) return node.anyOf.map((n) => describeType(n, key)).join(', or ');
  if (node.enum !== undefined) return node.enum.map((v) => `\`${v}\``).join(', ');
  switch (node.type) {
    case 'integer':
    case 'number':
      return withUnit(describeRange(node, node.type === 'integer' ? 'integer' : 'number'));
    case 'boolean':
      return 'boolean';
    case 'string': {
      if (node.format === 'uri') return '`http://` or `https://` URL';
      if (node.pattern !== undefined) return `string matching \`${node.pattern}\``;
      const min = node.minLength ?? 0;
      if (node.maxLength !== undefined) return `string, ${min}–${node.maxLength} characters`;
      return min > 1 ? `string, at least ${min} characters` : 'string';
    }
    case 'array': {
      const items = node.items ?? {};
      const of = objectOf(node) !== undefined ? 'mappings' : items.type === 'string' && items.enum === undefined ? 'strings' : describeType(items, '');
      const atLeast = node.minItems === undefined ? '' : node.minItems === 1 ? ', at least one' : `, at least ${node.minItems}`;
      return `list of ${of}${atLeast}`;
    }
    case 'object':
      if (node.properties !== undefined) return 'mapping';
      if (typeof node.additionalProperties === 'object') return `map of string → ${describeType(node.additionalProperties, '')}`;
      return 'mapping';
    default:
      return 'any';
  }
}

function describeRange(node: JsonSchema, noun: string): string {
  // JSON Schema states safe-integer bounds for every integer: they say nothing to a reader.
  const max = node.maximum !== undefined && node.maximum < Number.MAX_SAFE_INTEGER ? node.maximum : undefined;
  const min = node.minimum ?? (node.exclusiveMinimum !== undefined && noun === 'integer' ? node.exclusiveMinimum + 1 : undefined);
  const fmt = (n: number): string => n.toLocaleString('en-US');
  if (min !== undefined && max !== undefined) return `${noun} ${fmt(min)}–${fmt(max)}`;
  if (node.exclusiveMinimum === 0 && max === undefined) return `positive ${noun}`;
  if (node.exclusiveMinimum !== undefined && max !== undefined) return `${noun} > ${fmt(node.exclusiveMinimum)}, at most ${fmt(max)}`;
  if (min === 0) return `non-negative ${noun}`;
  if (min !== undefined) return `${noun} ≥ ${fmt(min)}`;
  if (max !== undefined) return `${noun} ≤ ${fmt(max)}`;
  return noun;
}

function describeDefault(node: JsonSchema, required: boolean): string {
  if (node.default !== undefined) {
    if (typeof node.default === 'object' && node.default !== null && Object.keys(node.default).length === 0) return 'all defaults';
    // Strings as written in YAML (no quotes) unless empty, where the quotes are the point.
    const text = typeof node.default === 'string' && node.default !== '' ? node.default : JSON.stringify(node.default);
    return `\`${text}\``;
  }
  return required ? 'required' : '—';
}
