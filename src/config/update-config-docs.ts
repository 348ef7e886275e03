/**
 * `npm run docs:config`: rewrites the key tables of docs/configuration.md from the schema. Run it
 * after adding or changing a key; test/config/configuration-docs.test.ts fails until you do.
 */
import { readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { describeSchema } from './describe-schema.js';
import { renderConfigDocs } from './render-config-docs.js';
import { configSchema } from './schema.js';

export async function updateConfigDocs(file: string): Promise<boolean> {
  const before = await readFile(file, 'utf8');
  const after = renderConfigDocs(before, describeSchema(configSchema));
  if (after !== before) await writeFile(file, after);
  return after !== before;
}

// Only when run as a script (dist/src/config/update-config-docs.js), never on import.
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2] ?? 'docs/configuration.md';
  const changed = await updateConfigDocs(file);
  process.stdout.write(changed ? `updated ${file}\n` : `${file} is up to date\n`);
}
