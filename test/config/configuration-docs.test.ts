import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parseConfig } from '../../src/config/load-config.js';
import { SECRET_KEYS, configSchema } from '../../src/config/schema.js';

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
