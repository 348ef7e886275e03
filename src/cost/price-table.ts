/**
 * AWS S3 list prices used by `auditlog cost`. Pure data.
 *
 * Source: the AWS S3 pricing page (https://aws.amazon.com/s3/pricing/), first-50-TB storage tier,
 * on-demand list prices in USD, as transcribed on PRICE_TABLE_DATE. Prices change: the date is
 * printed with every estimate so nobody quotes a stale figure as current. AWS bills a "GB" as 2^30
 * bytes, and so does the estimator.
 */

export const PRICE_TABLE_DATE = '2025-06-01';
export const PRICE_TABLE_SOURCE = 'AWS S3 pricing page, on-demand list prices, first 50 TB tier (https://aws.amazon.com/s3/pricing/)';

export const STORAGE_CLASSES = ['STANDARD', 'INTELLIGENT_TIERING', 'STANDARD_IA', 'ONEZONE_IA', 'GLACIER_IR', 'GLACIER', 'DEEP_ARCHIVE'] as const;
export type StorageClass = (typeof STORAGE_CLASSES)[number];

export interface ClassPrice {
  /** USD per GB-month. For INTELLIGENT_TIERING: the Frequent Access tier (an object's first 30 days). */
  storagePerGbMonth: number;
  putPer1000: number;
  getPer1000: number;
  /** USD per GB read back (GLACIER/DEEP_ARCHIVE: a Standard-tier restore). */
  retrievalPerGb: number;
  /** USD per 1,000 restore requests (GLACIER/DEEP_ARCHIVE only: objects must be restored before a GET). */
  restoreRequestPer1000: number;
}

export interface RegionPrices {
  classes: Record<StorageClass, ClassPrice>;
  /** INTELLIGENT_TIERING after 30 days without access (Infrequent) and after 90 (Archive Instant Access). */
  intelligentTiering: { infrequentPerGbMonth: number; archiveInstantPerGbMonth: number; monitoringPer1000ObjectsMonth: number };
}

/**
 * Billing rules that are the same in every region: the minimum storage duration (an object deleted
 * earlier is billed for the rest of it), the minimum billable object size, and the per-object
 * index overhead of the archive classes (32 KB at the class's rate plus 8 KB at STANDARD's).
 */
export const CLASS_RULES: Record<StorageClass, { minimumDays: number; minimumObjectBytes: number; overheadBytes: number; overheadStandardBytes: number; readableImmediately: boolean }> = {
  STANDARD: { minimumDays: 0, minimumObjectBytes: 0, overheadBytes: 0, overheadStandardBytes: 0, readableImmediately: true },
  // Objects under 128 KB are never moved out of the Frequent tier and not charged monitoring.
  INTELLIGENT_TIERING: { minimumDays: 0, minimumObjectBytes: 0, overheadBytes: 0, overheadStandardBytes: 0, readableImmediately: true },
  STANDARD_IA: { minimumDays: 30, minimumObjectBytes: 128 * 1024, overheadBytes: 0, overheadStandardBytes: 0, readableImmediately: true },
  ONEZONE_IA: { minimumDays: 30, minimumObjectBytes: 128 * 1024, overheadBytes: 0, overheadStandardBytes: 0, readableImmediately: true },
  GLACIER_IR: { minimumDays: 90, minimumObjectBytes: 128 * 1024, overheadBytes: 0, overheadStandardBytes: 0, readableImmediately: true },
  GLACIER: { minimumDays: 90, minimumObjectBytes: 0, overheadBytes: 32 * 1024, overheadStandardBytes: 8 * 1024, readableImmediately: false },
  DEEP_ARCHIVE: { minimumDays: 180, minimumObjectBytes: 0, overheadBytes: 32 * 1024, overheadStandardBytes: 8 * 1024, readableImmediately: false },
};

const usEastLike: RegionPrices = {
  classes: {
    STANDARD: { storagePerGbMonth: 0.023, putPer1000: 0.005, getPer1000: 0.0004, retrievalPerGb: 0, restoreRequestPer1000: 0 },
    INTELLIGENT_TIERING: { storagePerGbMonth: 0.023, putPer1000: 0.005, getPer1000: 0.0004, retrievalPerGb: 0, restoreRequestPer1000: 0 },
    STANDARD_IA: { storagePerGbMonth: 0.0125, putPer1000: 0.01, getPer1000: 0.001, retrievalPerGb: 0.01, restoreRequestPer1000: 0 },
    ONEZONE_IA: { storagePerGbMonth: 0.01, putPer1000: 0.01, getPer1000: 0.001, retrievalPerGb: 0.01, restoreRequestPer1000: 0 },
    GLACIER_IR: { storagePerGbMonth: 0.004, putPer1000: 0.02, getPer1000: 0.01, retrievalPerGb: 0.03, restoreRequestPer1000: 0 },
    GLACIER: { storagePerGbMonth: 0.0036, putPer1000: 0.03, getPer1000: 0.0004, retrievalPerGb: 0.01, restoreRequestPer1000: 0.05 },
    DEEP_ARCHIVE: { storagePerGbMonth: 0.00099, putPer1000: 0.05, getPer1000: 0.0004, retrievalPerGb: 0.02, restoreRequestPer1000: 0.1 },
  },
  intelligentTiering: { infrequentPerGbMonth: 0.0125, archiveInstantPerGbMonth: 0.004, monitoringPer1000ObjectsMonth: 0.0025 },
};

export const PRICE_TABLE: Record<string, RegionPrices> = {
  'us-east-1': usEastLike,
  'us-east-2': usEastLike,
  'us-west-2': usEastLike,
  'eu-west-1': usEastLike,
  'eu-central-1': {
    classes: {
      STANDARD: { storagePerGbMonth: 0.0245, putPer1000: 0.0054, getPer1000: 0.00043, retrievalPerGb: 0, restoreRequestPer1000: 0 },
      INTELLIGENT_TIERING: { storagePerGbMonth: 0.0245, putPer1000: 0.0054, getPer1000: 0.00043, retrievalPerGb: 0, restoreRequestPer1000: 0 },
      STANDARD_IA: { storagePerGbMonth: 0.0135, putPer1000: 0.01, getPer1000: 0.001, retrievalPerGb: 0.01, restoreRequestPer1000: 0 },
      ONEZONE_IA: { storagePerGbMonth: 0.0108, putPer1000: 0.01, getPer1000: 0.001, retrievalPerGb: 0.01, restoreRequestPer1000: 0 },
      GLACIER_IR: { storagePerGbMonth: 0.005, putPer1000: 0.02, getPer1000: 0.01, retrievalPerGb: 0.03, restoreRequestPer1000: 0 },
      GLACIER: { storagePerGbMonth: 0.0045, putPer1000: 0.036, getPer1000: 0.00043, retrievalPerGb: 0.012, restoreRequestPer1000: 0.06 },
      DEEP_ARCHIVE: { storagePerGbMonth: 0.0018, putPer1000: 0.06, getPer1000: 0.00043, retrievalPerGb: 0.024, restoreRequestPer1000: 0.12 },
    },
    intelligentTiering: { infrequentPerGbMonth: 0.0135, archiveInstantPerGbMonth: 0.005, monitoringPer1000ObjectsMonth: 0.0025 },
  },
};
