/** `auditlog cost` text output: one row per class, the recommendation last. Pure. */
import type { CostEstimate } from './estimate-cost.js';

const usd = (n: number): string => (n >= 100 ? `$${n.toFixed(0)}` : n >= 1 ? `$${n.toFixed(2)}` : `$${n.toFixed(4)}`);
const gb = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 1 ? n.toFixed(2) : n.toFixed(4));

export function formatCostEstimate(e: CostEstimate): string {
  const header = ['class', 'monthly', `${e.months} months`, 'upload requests', 'one full restore', 'total', 'notes'];
  const rows = e.classes.map((c) => {
    const notes: string[] = [];
    if (c.storageClass === e.recommended) notes.push('cheapest sensible');
    if (c.firstMonthStorage !== c.monthlyStorage) notes.push(`first month ${usd(c.firstMonthStorage)}`);
    if (c.smallObjectPenaltyMonthly > 0) notes.push(`${usd(c.smallObjectPenaltyMonthly)}/month of it is the 128 KB minimum object size`);
    if (c.earlyDeletePenalty > 0) notes.push(`minimum ${c.minimumDays} days: ${usd(c.earlyDeletePenalty)} more if deleted after ${e.months} months`);
    if (!c.readableImmediately) notes.push('not readable without a restore: reach it with a lifecycle rule, not storage_class');
    return [c.storageClass, usd(c.monthlyStorage), usd(c.cumulativeStorage), usd(c.uploadRequests), usd(c.fullRestore), usd(c.total), notes.join('; ')];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd();
  return [
    `S3 cost estimate, region ${e.region}, prices of ${e.priceDate} (${e.priceSource})`,
    `${e.records.toLocaleString('en-US')} rows, ${gb(e.uncompressedGb)} GB as JSON, ${gb(e.compressedGb)} GB stored at a ${e.compressionRatio.toFixed(1)}:1 compression ratio, ${e.objects.toLocaleString('en-US')} objects of ${Math.round(e.averageObjectBytes / 1024).toLocaleString('en-US')} KB on average (${e.batchSize === null ? "batches of each table's own size" : `batches of ${e.batchSize.toLocaleString('en-US')} rows`})`,
    '',
    line(header),
    ...rows.map(line),
    '',
    e.recommended === null ? 'No class fits.' : `Cheapest sensible class over ${e.months} months, one full restore included: ${e.recommended} (set s3.storage_class: ${e.recommended}).`,
    'Prices in USD, excluding tax, data transfer out of AWS and KMS requests. Check the current prices before quoting.',
    '',
  ].join('\n');
}
