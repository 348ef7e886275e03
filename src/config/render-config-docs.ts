/**
 * docs/configuration.md with its key tables regenerated from the schema. Pure. Each table sits
 * between `<!-- config-keys: NAME -->` and `<!-- /config-keys -->`; the prose around the markers is
 * hand-written and kept. A section of the schema without markers yet (a new mapping) gets a
 * heading and a table appended before `## Environment variables`, so new keys can never be left
 * out, only placed better by hand.
 */
import { AuditlogError } from '../core/errors.js';
import type { KeyDoc, SectionDoc } from './describe-schema.js';

const BLOCK = /<!-- config-keys: ([^>]+?) -->\n[\s\S]*?<!-- \/config-keys -->/g;
const NEW_SECTIONS_BEFORE = '## Environment variables';

export function renderConfigDocs(docs: string, sections: SectionDoc[]): string {
  const byName = new Map(sections.map((s) => [s.name, s]));
  const placed = new Set<string>();
  let out = docs.replace(BLOCK, (_match, name: string) => {
    const section = byName.get(name);
    if (section === undefined) {
      throw new AuditlogError('USAGE', `docs/configuration.md has a key table for "${name}", which is not in the schema: remove its <!-- config-keys --> block or rename it`);
    }
    placed.add(name);
    return renderBlock(section);
  });
  const missing = sections.filter((s) => !placed.has(s.name));
  if (missing.length > 0) {
    const added = missing.map((s) => `## \`${s.name}\`\n\nUnder \`${s.paths.join('` or `')}\`.\n\n${renderBlock(s)}\n\n`).join('');
    const at = out.indexOf(NEW_SECTIONS_BEFORE);
    out = at < 0 ? `${out.trimEnd()}\n\n${added}` : out.slice(0, at) + added + out.slice(at);
  }
  return out;
}

function renderBlock(section: SectionDoc): string {
  const rows = section.keys.map(renderRow);
  return [`<!-- config-keys: ${section.name} -->`, '| Key | Type | Default | Description |', '| --- | --- | --- | --- |', ...rows, '<!-- /config-keys -->'].join('\n');
}

function renderRow(key: KeyDoc): string {
  const see = key.section === undefined ? '' : ` See [\`${key.section}\`](#${anchorOf(key.section)}).`;
  return `| \`${key.key}\` | ${cell(key.type)} | ${cell(key.default)} | ${cell(key.description)}${see} |`;
}

/** GitHub's heading anchor for "## `tables[]`". */
export function anchorOf(name: string): string {
  return name.toLowerCase().replace(/[^a-z0-9_ -]/g, '').replace(/ /g, '-');
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
