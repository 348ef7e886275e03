/**
 * `auditlog restore`: option parsing into RestoreOptions (pure) and the text report. The drift
 * report and the objects that will not be restored are printed before the totals.
 */
import { AuditlogError } from '../core/errors.js';
import type { ConflictStrategy } from '../restore/restore-sql.js';
import type { RestoreOptions, RestoreSummary } from '../restore/restore-table.js';
import { parseDay } from '../restore/select-objects.js';

export interface RestoreCliOptions {
  config: string;
  database?: string;
  table: string;
  from?: string;
  to?: string;
  targetTable?: string;
  conflict: string;
  onCorrupt: string;
  strictSchema?: boolean;
  ignoreWatermark?: boolean;
  dropIndexes?: boolean;
  batchSize?: string;
  jobs?: string;
  dryRun?: boolean;
  json?: boolean;
}

const STRATEGIES: readonly ConflictStrategy[] = ['skip', 'overwrite', 'fail', 'upsert'];

/** The parts of RestoreOptions that come from flags; validated here so bad flags exit 2 before any work. */
export function parseRestoreFlags(opts: RestoreCliOptions): Pick<RestoreOptions, 'range' | 'conflict' | 'onCorrupt' | 'strictSchema' | 'ignoreWatermark' | 'dropIndexes' | 'dryRun' | 'table'> &
  Partial<Pick<RestoreOptions, 'target' | 'batchSize' | 'database' | 'jobs'>> {
  if (!STRATEGIES.includes(opts.conflict as ConflictStrategy)) throw new AuditlogError('USAGE', `--conflict expects one of ${STRATEGIES.join(', ')}, got "${opts.conflict}"`);
  if (opts.onCorrupt !== 'skip' && opts.onCorrupt !== 'fail') throw new AuditlogError('USAGE', `--on-corrupt expects skip or fail, got "${opts.onCorrupt}"`);
  const from = opts.from === undefined ? undefined : parseDay(opts.from, '--from');
  const to = opts.to === undefined ? undefined : parseDay(opts.to, '--to');
  if (from !== undefined && to !== undefined && from > to) throw new AuditlogError('USAGE', `--from ${from} is after --to ${to}`);
  const batchSize = opts.batchSize === undefined ? undefined : parseCount(opts.batchSize, '--batch-size', 10_000_000);
  const jobs = opts.jobs === undefined ? undefined : parseCount(opts.jobs, '--jobs', 16);
  return {
    table: opts.table,
    ...(opts.database === undefined ? {} : { database: opts.database }),
    range: { ...(from === undefined ? {} : { from }), ...(to === undefined ? {} : { to }) },
    ...(opts.targetTable === undefined ? {} : { target: parseQualifiedName(opts.targetTable) }),
    conflict: opts.conflict as ConflictStrategy,
    onCorrupt: opts.onCorrupt,
    strictSchema: opts.strictSchema === true,
    ignoreWatermark: opts.ignoreWatermark === true,
    dropIndexes: opts.dropIndexes === true,
    dryRun: opts.dryRun === true,
    ...(batchSize === undefined ? {} : { batchSize }),
    ...(jobs === undefined ? {} : { jobs }),
  };
}

function parseCount(value: string, flag: string, max: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0 || n > max) throw new AuditlogError('USAGE', `${flag} expects an integer from 1 to ${max}, got "${value}"`);
  return n;
}

/**
 * `SCHEMA.NAME` split at the dot outside double quotes; either part may be quoted
 * (`"my.schema"."Odd ""name"""`). Without a schema, `public`.
 */
export function parseQualifiedName(value: string): { schema: string; table: string } {
  const parts: string[] = [];
  let current = '';
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i]!;
    if (quoted) {
      if (ch === '"' && value[i + 1] === '"') {
        current += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else current += ch;
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === '.') {
      parts.push(current);
      current = '';
    } else current += ch;
  }
  parts.push(current);
  const bad = quoted || parts.length > 2 || parts.some((p) => p === '' || new TextEncoder().encode(p).length > 63);
  if (bad) throw new AuditlogError('USAGE', `--target-table expects SCHEMA.NAME (quote names with dots: "a.b"."c"), got "${value}"`);
  return parts.length === 1 ? { schema: 'public', table: parts[0]! } : { schema: parts[0]!, table: parts[1]! };
}

export function formatRestoreSummary(s: RestoreSummary): string {
  const out: string[] = [];
  const head = `${s.database}/${s.schema}.${s.table} → ${s.target.schema}.${s.target.table}${s.targetCreated ? (s.dryRun ? ' (would be created)' : ' (created)') : ''}`;
  out.push(s.dryRun ? `${head} — dry run, nothing written` : head);
  for (const d of s.drift) out.push(`  drift:      ${d}`);
  out.push(`  objects:    ${s.objects.restored} ${s.dryRun ? 'checked' : 'restored'} of ${s.objects.selected} selected, ${s.objects.skippedByWatermark} already restored (watermark)`);
  out.push(
    `  rows:       ${s.rows.restored} ${s.dryRun ? 'would be loaded' : 'loaded'}: ${s.rows.inserted} inserted, ${s.rows.conflicts} conflicts (${conflictVerb(s.conflictStrategy)})${s.rows.skippedByTriggers > 0 ? `, ${s.rows.skippedByTriggers} not taken by the target: a trigger returned NULL for them (dropped, or stored elsewhere such as a child table)` : ''}${s.rows.superseded > 0 ? `; ${s.rows.superseded} superseded: older archived versions of keys a later run archived again, not loaded` : ''}`,
  );
  for (const key of s.uncommitted) out.push(`  uncommitted: ${key} (batch in flight; not restored)`);
  for (const c of s.corrupt) out.push(`  corrupt:    ${c.message}`);
  if (s.indexes.dropped.length > 0) out.push(`  indexes:    ${s.indexes.dropped.length} dropped for the load, ${s.indexes.recreated.length} recreated${s.indexes.failedToRecreate.length > 0 ? `, NOT recreated: ${s.indexes.failedToRecreate.join(', ')}` : ''}`);
  out.push(`  speed:      ${s.rowsPerSecond} rows/s in ${(s.durationMs / 1000).toFixed(1)} s`);
  if (s.error !== undefined) out.push(`  error:      ${s.error.message} [${s.error.code}]`);
  return out.join('\n') + '\n';
}

function conflictVerb(strategy: ConflictStrategy): string {
  return strategy === 'skip' ? 'kept the existing rows' : strategy === 'overwrite' ? 'replaced' : strategy === 'upsert' ? 'updated' : 'none allowed';
}
