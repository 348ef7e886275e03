/**
 * Names the enum labels a batch could not load. After ALTER TYPE … RENAME VALUE (or a label
 * dropped by recreating the type) rows archived before hold a label the enum no longer has, and
 * PostgreSQL's error named neither the column nor the label, and advised "fix the target", which
 * did not say how (found by probing). Only run after a batch failed with 22P02: it reads the
 * batch's lines again, which costs nothing next to the failed load. Values staged as text
 * (schema-drift.ts stagedAsText) fail only where they go into an enum; so do all others.
 */
import { AuditlogError } from '../core/errors.js';
import type { Queryable } from '../db/queryable.js';
import { enumLabels, findEnumTypes } from '../db/target-table.js';
import { quoteLiteral } from '../db/quote-ident.js';
import { parseLineObject } from '../validate/json-line-fields.js';
import type { SourceLine } from './copy-text.js';
import type { DriftPlan } from './schema-drift.js';
import { batchObjects } from './load-error.js';

export interface UnknownLabels {
  /** The archived column, and the target column and its enum type the values go into. */
  archived: string;
  target: string;
  type: string;
  labels: string[];
}

/** Labels named per column, at most: the message stays one readable line. */
const SHOWN = 5;

/** Pure: per column, the distinct string values of the lines that are not labels of the column's enum, in order of first appearance. */
export function unknownEnumLabels(lines: readonly SourceLine[], columns: ReadonlyArray<Omit<UnknownLabels, 'labels'> & { known: ReadonlySet<string> }>): UnknownLabels[] {
  const found = columns.map(() => new Set<string>());
  for (const l of lines) {
    const row = parseLineObject(l.raw.toString('utf8', l.start, l.end));
    if (row === undefined) continue;
    columns.forEach((c, i) => {
      const v = row[c.archived];
      if (typeof v === 'string' && !c.known.has(v)) found[i]!.add(v);
    });
  }
  return columns.flatMap((c, i) => (found[i]!.size === 0 ? [] : [{ archived: c.archived, target: c.target, type: c.type, labels: [...found[i]!] }]));
}

/** Pure: the SCHEMA_DRIFT error naming the column, the labels its enum lacks, and the two ways out. */
export function unknownEnumLabelsError(found: readonly UnknownLabels[], target: { schema: string; table: string }, objects: readonly string[], dryRun: boolean): AuditlogError {
  const label = `${target.schema}.${target.table}`;
  const first = found[0]!;
  const what = found
    .map((f) => {
      const shown = f.labels.slice(0, SHOWN).map(quoteLiteral).join(', ');
      const more = f.labels.length > SHOWN ? ` and ${f.labels.length - SHOWN} more` : '';
      return `archived column "${f.archived}" holds ${f.labels.length === 1 ? 'the label' : 'labels'} ${shown}${more} that enum type ${f.type} of column "${f.target}" does not have`;
    })
    .join('; ');
  const add = first.labels
    .slice(0, SHOWN)
    .map((l) => `ALTER TYPE ${first.type} ADD VALUE ${quoteLiteral(l)}`)
    .join('; ');
  const outcome = dryRun ? 'nothing was loaded (dry run)' : 'this batch was rolled back, batches committed before stay restored';
  return new AuditlogError(
    'SCHEMA_DRIFT',
    `restoring ${batchObjects(objects)} into ${label} stopped: ${what} (renamed or removed since these rows were archived); ${outcome}; add the label back (${add}), or restore into a --target-table you create with column "${first.target}" as text, then rerun`,
    { details: { key: objects[0] ?? null, objects: [...objects], columns: found.map((f) => f.target), type: first.type, labels: first.labels } },
  );
}

/**
 * After a batch failed with 22P02: the labels of its lines that the enum columns of the target do
 * not have, or undefined when there are none (the failure was another value's) or they cannot be
 * looked up. The caller has rolled the batch back.
 */
export async function diagnoseEnumLabels(q: Queryable, drift: DriftPlan, lines: readonly SourceLine[]): Promise<UnknownLabels[] | undefined> {
  try {
    const enums = await findEnumTypes(q, drift.columns.map((c) => c.targetType));
    if (enums.size === 0) return undefined;
    const columns: Array<Omit<UnknownLabels, 'labels'> & { known: ReadonlySet<string> }> = [];
    for (const c of drift.columns.filter((col) => enums.has(col.targetType))) {
      columns.push({ archived: c.archived, target: c.target, type: c.targetType, known: new Set(await enumLabels(q, c.targetType)) });
    }
    const found = unknownEnumLabels(lines, columns);
    return found.length === 0 ? undefined : found;
  } catch {
    return undefined;
  }
}
