/**
 * What an archive costs in each S3 storage class. Pure: sizes and prices in, figures out.
 *
 * Model: the archive is written once (one data object per batch of `batchSize` rows) and kept for
 * `months` months of 30 days. Per batch the archiver makes, at the class's request prices, one PUT
 * of the data object and one GET to read it back (verify before delete) — that read-back reads
 * every byte once, so the class's retrieval fee per GB applies to it too —, and at STANDARD prices
 * three small PUTs (pending marker twice, metadata sidecar) and one GET (sidecar read-back).
 * Sidecars and markers are a few KB in STANDARD and left out of the storage figures.
 */
import { rowsWithin } from '../archive/batch-sizer.js';
import { AuditlogError } from '../core/errors.js';
import { CLASS_RULES, PRICE_TABLE, PRICE_TABLE_DATE, PRICE_TABLE_SOURCE, STORAGE_CLASSES, type StorageClass } from './price-table.js';

export const GIB = 1024 ** 3;

/**
 * Rows per data object: `batchSize`, or fewer when that many rows of `bytesPerRow` would pass
 * `maxBatchBytes` — the archiver's own byte cap on a page (batch-sizer.ts). Found by probing: wide
 * rows were counted as one object per day where the archiver wrote fifty.
 */
export function rowsPerObject(batchSize: number, maxBatchBytes: number, bytesPerRow: number): number {
  return Math.min(batchSize, rowsWithin(maxBatchBytes, bytesPerRow));
}
const IT_TIERING_MIN_OBJECT_BYTES = 128 * 1024;

export interface CostInput {
  region: string;
  /** Bytes of the JSON lines before compression. */
  uncompressedBytes: number;
  records: number;
  /** Rows per object; null when tables differ (then `objects` must be given). */
  batchSize: number | null;
  /** Uncompressed size divided by compressed size (e.g. 8 means gzip makes it 8 times smaller). */
  compressionRatio: number;
  months: number;
  classes?: readonly StorageClass[];
  /** Objects actually written, when known (batches never span two UTC days); else records ÷ batchSize. */
  objects?: number;
}

export interface ClassCost {
  storageClass: StorageClass;
  /** Bytes billed: compressed size raised to the class's minimum object size, plus per-object overhead. */
  billableGb: number;
  firstMonthStorage: number;
  /** A month once the data has settled (INTELLIGENT_TIERING moves it to cheaper tiers with age). */
  monthlyStorage: number;
  cumulativeStorage: number;
  /** One-off: the PUT and GET requests of writing and verifying every batch, and the retrieval fee of the verification's read-back. */
  uploadRequests: number;
  /** Part of each month's storage that comes from the minimum billable object size. */
  smallObjectPenaltyMonthly: number;
  minimumDays: number;
  /** Extra charge if the archive were deleted after `months` months, before the minimum storage duration. */
  earlyDeletePenalty: number;
  /** Reading the whole archive back once: retrieval per GB, GETs, and restore requests where needed. */
  fullRestore: number;
  /** upload requests + cumulative storage + one full restore. */
  total: number;
  /** GLACIER and DEEP_ARCHIVE objects cannot be read without a restore first, so the archiver cannot verify them. */
  readableImmediately: boolean;
}

export interface CostEstimate {
  priceDate: string;
  priceSource: string;
  region: string;
  months: number;
  records: number;
  /** Rows per object; null when the tables measured differ. */
  batchSize: number | null;
  objects: number;
  uncompressedGb: number;
  compressionRatio: number;
  compressedGb: number;
  averageObjectBytes: number;
  classes: ClassCost[];
  /** The cheapest total among classes the archiver can write and verify directly. */
  recommended: StorageClass | null;
}

export function estimateCost(input: CostInput): CostEstimate {
  const prices = PRICE_TABLE[input.region];
  if (prices === undefined) {
    throw new AuditlogError('USAGE', `unknown region "${input.region}": the price table (dated ${PRICE_TABLE_DATE}) has ${Object.keys(PRICE_TABLE).join(', ')}`);
  }
  const objects = input.objects ?? (input.records > 0 ? Math.ceil(input.records / (input.batchSize ?? input.records)) : 0);
  const compressedBytes = input.uncompressedBytes / input.compressionRatio;
  const averageObjectBytes = objects > 0 ? compressedBytes / objects : 0;
  const standard = prices.classes.STANDARD;
  const writeOverhead = (objects * (3 * standard.putPer1000 + standard.getPer1000)) / 1000;

  const classes = (input.classes ?? STORAGE_CLASSES).map((storageClass): ClassCost => {
    const price = prices.classes[storageClass];
    const rules = CLASS_RULES[storageClass];
    const billablePerObject = Math.max(averageObjectBytes, rules.minimumObjectBytes) + rules.overheadBytes;
    const billableGb = (objects * billablePerObject) / GIB;
    const standardOverheadGb = (objects * rules.overheadStandardBytes) / GIB;
    const tiered = storageClass === 'INTELLIGENT_TIERING' && averageObjectBytes >= IT_TIERING_MIN_OBJECT_BYTES;
    const rateInMonth = (month: number): number => {
      if (!tiered) return price.storagePerGbMonth;
      if (month <= 1) return price.storagePerGbMonth;
      if (month <= 3) return prices.intelligentTiering.infrequentPerGbMonth;
      return prices.intelligentTiering.archiveInstantPerGbMonth;
    };
    const monitoring = tiered ? (objects * prices.intelligentTiering.monitoringPer1000ObjectsMonth) / 1000 : 0;
    const storageInMonth = (month: number): number => rateInMonth(month) * billableGb + standardOverheadGb * standard.storagePerGbMonth + monitoring;
    let cumulativeStorage = 0;
    for (let month = 1; month <= input.months; month += 1) cumulativeStorage += storageInMonth(month);
    const minimumMonths = rules.minimumDays / 30;
    const earlyDeletePenalty = input.months < minimumMonths ? (minimumMonths - input.months) * price.storagePerGbMonth * billableGb : 0;
    // Found by probing: the read-back's retrieval fee was left out, which favoured the IA classes.
    // (GLACIER and DEEP_ARCHIVE cannot be read back at all: they are reached by lifecycle rules.)
    const readBack = rules.readableImmediately ? (compressedBytes / GIB) * price.retrievalPerGb : 0;
    const uploadRequests = (objects * (price.putPer1000 + price.getPer1000)) / 1000 + writeOverhead + readBack;
    const fullRestore =
      (compressedBytes / GIB) * price.retrievalPerGb + (objects * (price.getPer1000 + price.restoreRequestPer1000 + standard.getPer1000)) / 1000;
    return {
      storageClass,
      billableGb,
      firstMonthStorage: storageInMonth(1),
      monthlyStorage: storageInMonth(Math.max(input.months, 4)),
      cumulativeStorage,
      uploadRequests,
      smallObjectPenaltyMonthly: (objects * Math.max(0, rules.minimumObjectBytes - averageObjectBytes) * price.storagePerGbMonth) / GIB,
      minimumDays: rules.minimumDays,
      earlyDeletePenalty,
      fullRestore,
      total: uploadRequests + cumulativeStorage + fullRestore,
      readableImmediately: rules.readableImmediately,
    };
  });
  const candidates = classes.filter((c) => c.readableImmediately).sort((a, b) => a.total - b.total);
  return {
    priceDate: PRICE_TABLE_DATE,
    priceSource: PRICE_TABLE_SOURCE,
    region: input.region,
    months: input.months,
    records: input.records,
    batchSize: input.batchSize,
    objects,
    uncompressedGb: input.uncompressedBytes / GIB,
    compressionRatio: input.compressionRatio,
    compressedGb: compressedBytes / GIB,
    averageObjectBytes,
    classes,
    recommended: candidates[0]?.storageClass ?? null,
  };
}
