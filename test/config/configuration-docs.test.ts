import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseConfig } from '../../src/config/load-config.js';
import { SECRET_KEYS, configSchema } from '../../src/config/schema.js';
import { describeSchema } from '../../src/config/describe-schema.js';
import { renderConfigDocs } from '../../src/config/render-config-docs.js';

const docsUrl = new URL('../../docs/configuration.md', import.meta.url);

/** Every key of the schema as `section.key`, e.g. `databases[].tables[].primary_key`. */
function listKeys(schema: z.ZodType, prefix: string): string[] {
  if (schema instanceof z.ZodOptional || schema instanceof z.ZodDefault || schema instanceof z.ZodPrefault) {
    return listKeys(schema.def.innerType as z.ZodType, prefix);
  }
  if (schema instanceof z.ZodArray) return listKeys(schema.element as z.ZodType, `${prefix}[]`);
  if (!(schema instanceof z.ZodObject)) return [];
  return Object.entries(schema.shape as Record<string, z.ZodType>).flatMap(([key, child]) => {
    const path = prefix === '' ? key : `${prefix}.${key}`;
    return [path, ...listKeys(child, path)];
  });
}

describe('docs/configuration.md', () => {
  it('has a table row for every key of the schema', async () => {
    const docs = await readFile(docsUrl, 'utf8');
    const rows = new Set([...docs.matchAll(/^\| `([a-z_0-9]+)` \|/gm)].map((m) => m[1]));
    const keys = listKeys(configSchema, '');
    expect(keys.length).toBeGreaterThan(40);
    const undocumented = keys.filter((path) => !rows.has(path.split('.').pop()?.replace('[]', '')));
    expect(undocumented).toEqual([]);
  });

  it('names every secret key', async () => {
    const docs = await readFile(docsUrl, 'utf8');
    const secretsSection = docs.slice(docs.indexOf('## Secrets'), docs.indexOf('## Errors'));
    for (const key of SECRET_KEYS) expect(secretsSection).toContain(key);
  });

  it('has a full example that is valid and sets every key', async () => {
    const docs = await readFile(docsUrl, 'utf8');
    const full = docs.slice(docs.indexOf('## Full example'));
    const example = /```yaml\n([\s\S]*?)```/.exec(full)?.[1];
    expect(example).toBeDefined();
    const config = parseConfig(example ?? '', 'configuration.md', {
      AWS_ACCESS_KEY_ID: 'AKIAEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'secret',
      AWS_SESSION_TOKEN: 'token',
      APP_DATABASE_URL: 'postgresql://archiver:pw@db.internal:5432/app',
      REPORTING_PASSWORD: 'pw',
    });
    expect(config.databases[1]?.port).toBe(5432);
    expect(config.databases[0]?.tables[1]?.primary_key).toEqual(['order_id', 'seq']);
    const written = new Set([...(example ?? '').matchAll(/^\s*(?:- )?([a-z_0-9]+):/gm)].map((m) => m[1]));
    const missing = listKeys(configSchema, '')
      .map((path) => path.split('.').pop()?.replace('[]', ''))
      .filter((key) => key !== 'local' && key !== 'path' && !written.has(key));
    expect(missing).toEqual([]);
  });

  it('has a minimal example that is valid', async () => {
    const docs = await readFile(docsUrl, 'utf8');
    const example = /## Minimal example\s+```yaml\n([\s\S]*?)```/.exec(docs)?.[1] ?? '';
    const config = parseConfig(example, 'configuration.md', { APP_DATABASE_URL: 'postgresql://db/app' });
    expect(config.defaults.retention_days).toBe(90);
  });
});

describe('generated key tables', () => {
  it('docs/configuration.md is what `npm run docs:config` generates from the schema (run it after changing a key)', async () => {
    const docs = await readFile(docsUrl, 'utf8');
    expect(renderConfigDocs(docs, describeSchema(configSchema))).toBe(docs);
  });

  it('every key of the schema has a description', () => {
    const undescribed = describeSchema(configSchema).flatMap((s) => s.keys.filter((k) => k.description === '').map((k) => `${s.paths[0] || s.name}.${k.key}`));
    expect(undescribed).toEqual([]);
  });

  it('reads type, default and required from the schema, and shares one section between s3.retry and local.retry', () => {
    const sections = describeSchema(configSchema);
    const retry = sections.find((s) => s.name === 'retry');
    expect(retry?.paths).toEqual(['s3.retry', 'local.retry']);
    expect(retry?.keys.find((k) => k.key === 'max_attempts')).toMatchObject({ type: 'integer 1–20', default: '`5`' });
    const s3 = sections.find((s) => s.name === 's3')!;
    expect(s3.keys.find((k) => k.key === 'bucket')).toMatchObject({ type: 'string, at least 3 characters', default: 'required' });
    expect(s3.keys.find((k) => k.key === 'region')?.default).toBe('`us-east-1`');
    expect(s3.keys.find((k) => k.key === 'request_timeout_ms')?.type).toBe('integer 1–2,147,483,647 (ms)');
    const tables = sections.find((s) => s.name === 'tables[]')!;
    expect(tables.paths).toEqual(['databases[].tables[]']);
    expect(tables.keys.find((k) => k.key === 'retention_days')?.default).toBe('`defaults.retention_days`');
  });

  it('rewrites only the tables between markers, adds a section for a new mapping, and refuses a table for a key that is gone', () => {
    const schema = z.object({
      a: z.number().int().min(2).max(9).default(3).describe('An A.'),
      extra: z.object({ b: z.boolean().optional().describe('A B.') }).optional().describe('New section.'),
    });
    const docs = 'Intro kept.\n\n<!-- config-keys: top level -->\nstale\n<!-- /config-keys -->\n\nProse kept.\n\n## Environment variables\n';
    const out = renderConfigDocs(docs, describeSchema(schema));
    expect(out).toContain('Intro kept.');
    expect(out).toContain('Prose kept.');
    expect(out).not.toContain('stale');
    expect(out).toContain('| `a` | integer 2–9 | `3` | An A. |');
    expect(out).toContain('| `extra` | mapping | — | New section. See [`extra`](#extra). |');
    expect(out.indexOf('## `extra`')).toBeLessThan(out.indexOf('## Environment variables'));
    expect(out).toContain('| `b` | boolean | — | A B. |');
    expect(renderConfigDocs(out, describeSchema(schema))).toBe(out);
    expect(() => renderConfigDocs(`${out}\n<!-- config-keys: gone -->\n<!-- /config-keys -->\n`, describeSchema(schema))).toThrow(/"gone", which is not in the schema/);
  });
});
