/**
 * `auditlog cost`: what the archive will cost per S3 storage class. Sizes come from flags, or with
 * --config from the real tables (measure-tables.ts). Flag checking is pure and happens before any
 * connection, so a typo costs nothing.
 */
import type { Env } from '../config/expand-env.js';
import { loadConfig } from '../config/load-config.js';
import { collectSecrets } from '../config/mask-secrets.js';
import { AuditlogError } from '../core/errors.js';
import { estimateCost, rowsPerObject, type CostEstimate } from '../cost/estimate-cost.js';
import { formatCostEstimate } from '../cost/format-cost.js';
import { measureConfig, type ConfigMeasure, type TableMeasure } from '../cost/measure-tables.js';
import { loadRunHolds, withHoldDatabaseAliases } from '../compliance/run-holds.js';
import { readHoldSources } from './compliance-setup.js';
import { PRICE_TABLE, PRICE_TABLE_DATE } from '../cost/price-table.js';
import { checkRecordsSize, MAX_MONTHS, parseClasses, parseAvgRowBytes, parseCompressionRatio, parseRegion, parseSize, parseWholeNumber } from '../cost/parse-cost-options.js';
import { DEFAULT_MAX_BATCH_BYTES, MAX_BATCH_SIZE } from '../config/schema.js';

export interface CostCliOptions {
  config?: string;
  size?: string;
  records?: string;
  avgRowBytes?: string;
  batchSize?: string;
  region?: string;
  compressionRatio?: string;
  months: string;
  class?: string;
  /** Unset: text, or JSON with --json. */
  format?: 'text' | 'json';
  json?: boolean;
}

/** Rows of the benchmark's audit table are about 500 bytes as JSON (DESIGN.md §7). */
const DEFAULT_AVG_ROW_BYTES = 500;
/**
 * gzip level 6 on audit rows (DESIGN.md §7 dataset, docs/benchmarks.md) compresses about 8:1, and
 * zstd at its default level about the same: one figure without --config. With --config each table's
 * own codec and level compress a sample (measure-tables.ts).
 */
const DEFAULT_COMPRESSION_RATIO = 8;

const HOLD_NOTES: Record<NonNullable<TableMeasure['holds']> | 'none', string> = {
  none: '',
  table: ' (under a table-level legal hold: a run archives none of it)',
  records: ' (rows under record-level legal holds left out)',
  unavailable: ' (legal holds could not be read: a run would archive nothing now; every row is counted)',
};

export async function runCostCommand(opts: CostCliOptions, io: { env: Env; stdout: (text: string) => void; onSecrets: (secrets: string[]) => void }): Promise<number> {
  const sources = [opts.config, opts.size, opts.records].filter((v) => v !== undefined).length;
  if (sources !== 1) throw new AuditlogError('USAGE', 'cost needs exactly one of --config FILE, --size SIZE (e.g. 500GB) or --records N');
  // Found in review: one of the two silently won.
  if (opts.json === true && opts.format === 'text') throw new AuditlogError('USAGE', '--json and --format text contradict each other: pass one of them (--json is the same as --format json)');
  if (opts.config !== undefined && opts.avgRowBytes !== undefined) throw new AuditlogError('USAGE', '--avg-row-bytes applies to --size and --records; with --config the row size is measured');
  // Found in review: --batch-size was silently ignored with --config, so the estimate was not for the size asked.
  if (opts.config !== undefined && opts.batchSize !== undefined) throw new AuditlogError('USAGE', "--batch-size applies to --size and --records; with --config each table's own batch_size (else defaults.batch_size) is used: drop --batch-size, or change batch_size in the config");
  const months = parseWholeNumber(opts.months, '--months', 1, MAX_MONTHS);
  const classes = opts.class === undefined ? undefined : parseClasses(opts.class);
  const ratioFlag = opts.compressionRatio === undefined ? undefined : parseCompressionRatio(opts.compressionRatio);
  const batchFlag = opts.batchSize === undefined ? undefined : parseWholeNumber(opts.batchSize, '--batch-size', 1, MAX_BATCH_SIZE);
  const regionFlag = opts.region === undefined ? undefined : parseRegion(opts.region);

  let estimate: CostEstimate;
  let measured: ConfigMeasure | undefined;
  if (opts.config !== undefined) {
    const config = await loadConfig(opts.config, io.env);
    const secrets = collectSecrets(config);
    io.onSecrets(secrets);
    const region = regionFlag ?? config.s3?.region ?? 'us-east-1';
    if (PRICE_TABLE[region] === undefined) {
      throw new AuditlogError('USAGE', `s3.region "${region}" of ${opts.config} is not in the price table (dated ${PRICE_TABLE_DATE}): pass --region with one of ${Object.keys(PRICE_TABLE).join(', ')} for an estimate`);
    }
    // Legal holds as a run would apply them: a held table or held rows are not what it archives.
    const holdSources = readHoldSources(config, io.env);
    if (holdSources.apiAuthValue !== undefined) io.onSecrets([...secrets, holdSources.apiAuthValue]);
    // Under every configured name of a held database, as archive applies them (found in review).
    measured = await measureConfig(config, secrets, undefined, await withHoldDatabaseAliases({ config, secrets }, await loadRunHolds(config, holdSources)));
    estimate = estimateCost({
      region,
      uncompressedBytes: measured.uncompressedBytes,
      records: measured.records,
      // Each table's own: one figure only when they all have the same (found by probing: the
      // header said defaults.batch_size for a table that set its own).
      batchSize: singleRowsPerObject(measured.tables, config.defaults.batch_size),
      objects: measured.objects,
      compressionRatio: ratioFlag ?? measured.compressionRatio,
      months,
      ...(classes === undefined ? {} : { classes }),
    });
  } else {
    const avgRowBytes = opts.avgRowBytes === undefined ? DEFAULT_AVG_ROW_BYTES : parseAvgRowBytes(opts.avgRowBytes);
    const uncompressedBytes = opts.size !== undefined ? parseSize(opts.size) : checkRecordsSize(parseWholeNumber(opts.records ?? '', '--records', 0), avgRowBytes);
    const records = opts.records !== undefined ? parseWholeNumber(opts.records, '--records', 0) : Math.ceil(uncompressedBytes / avgRowBytes);
    estimate = estimateCost({
      region: regionFlag ?? 'us-east-1',
      uncompressedBytes,
      records,
      // As the archiver writes them: at most max_batch_bytes of lines per object (its default).
      batchSize: rowsPerObject(batchFlag ?? 10_000, DEFAULT_MAX_BATCH_BYTES, avgRowBytes),
      compressionRatio: ratioFlag ?? DEFAULT_COMPRESSION_RATIO,
      months,
      ...(classes === undefined ? {} : { classes }),
    });
  }
  const json = opts.json === true || opts.format === 'json';
  if (json) {
    io.stdout(JSON.stringify(measured === undefined ? estimate : { ...estimate, measured: measured.tables }) + '\n');
  } else {
    const perTable = measured?.tables.map((t) => `  ${t.database}/${t.table}: ${t.rowsPastRetention.toLocaleString('en-US')} rows past retention, ${t.objects.toLocaleString('en-US')} objects of up to ${t.rowsPerObject.toLocaleString('en-US')} rows, sample of ${t.sampleRows.toLocaleString('en-US')} rows compressed ${t.sampleCompressedBytes > 0 ? (t.sampleUncompressedBytes / t.sampleCompressedBytes).toFixed(1) : '-'}:1${HOLD_NOTES[t.holds ?? 'none']}`);
    io.stdout((perTable === undefined ? '' : `Measured:\n${perTable.join('\n')}\n\n`) + formatCostEstimate(estimate));
  }
  return 0;
}

/**
 * The rows per object of every table with rows to archive, when they all have the same; null when
 * they differ. Tables with nothing to archive (empty, held) say nothing about the objects.
 */
function singleRowsPerObject(tables: readonly TableMeasure[], fallback: number): number | null {
  const sizes = new Set(tables.filter((t) => t.rowsPastRetention > 0).map((t) => t.rowsPerObject));
  if (sizes.size === 0) return fallback;
  return sizes.size === 1 ? [...sizes][0]! : null;
}
