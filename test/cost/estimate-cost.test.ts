import { describe, expect, it } from 'vitest';
import { estimateCost, GIB, rowsPerObject, type ClassCost } from '../../src/cost/estimate-cost.js';
import { PRICE_TABLE_DATE, STORAGE_CLASSES } from '../../src/cost/price-table.js';
import { parseClasses, parseCompressionRatio, parseRegion, parseSize, parseWholeNumber } from '../../src/cost/parse-cost-options.js';
import { formatCostEstimate } from '../../src/cost/format-cost.js';
import { isAuditlogError } from '../../src/core/errors.js';

type Figures = Pick<ClassCost, 'monthlyStorage' | 'cumulativeStorage' | 'uploadRequests' | 'fullRestore' | 'earlyDeletePenalty'>;

/**
 * 1000 GiB of JSON at 10:1 → 100 GiB stored, 10,000,000 rows in batches of 10,000 → 1000 objects of
 * 100 MiB. Every figure below was worked out by hand from the price table (see the comments), so a
 * change in the model or a price shows up here.
 */
const input = { uncompressedBytes: 1000 * GIB, records: 10_000_000, batchSize: 10_000, compressionRatio: 10 };
// GLACIER/DEEP_ARCHIVE bill 32 KB per object at their rate and 8 KB at STANDARD's: 1000 × 32 KiB = 0.030517578125 GiB.
const archiveGb = 100.030517578125;
const standardOverheadGb = 0.00762939453125;

function byClass(classes: ClassCost[]): Record<string, Figures> {
  return Object.fromEntries(classes.map((c) => [c.storageClass, { monthlyStorage: c.monthlyStorage, cumulativeStorage: c.cumulativeStorage, uploadRequests: c.uploadRequests, fullRestore: c.fullRestore, earlyDeletePenalty: c.earlyDeletePenalty }]));
}

function expectFigures(actual: Record<string, Figures>, expected: Record<string, Figures>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [cls, figures] of Object.entries(expected)) {
    for (const [key, value] of Object.entries(figures)) {
      expect(actual[cls]?.[key as keyof Figures], `${cls}.${key}`).toBeCloseTo(value, 9);
    }
  }
}

describe('estimateCost', () => {
  it('us-east-1, 12 months: every class against hand-computed figures', () => {
    const e = estimateCost({ ...input, region: 'us-east-1', months: 12 });
    expect(e.objects).toBe(1000);
    expect(e.compressedGb).toBe(100);
    // Per batch at STANDARD prices: 3 PUTs (marker ×2, sidecar) + 1 GET (sidecar read-back) = 0.0154 for 1000 batches.
    expectFigures(byClass(e.classes), {
      STANDARD: { monthlyStorage: 2.3, cumulativeStorage: 27.6, uploadRequests: 0.0054 + 0.0154, fullRestore: 0.0008, earlyDeletePenalty: 0 },
      // Month 1 at 0.023, months 2–3 at 0.0125, months 4–12 at 0.004, plus 1000 objects × $0.0025/1000 monitoring each month.
      INTELLIGENT_TIERING: { monthlyStorage: 0.4025, cumulativeStorage: 2.3 + 2 * 1.25 + 9 * 0.4 + 12 * 0.0025, uploadRequests: 0.0208, fullRestore: 0.0008, earlyDeletePenalty: 0 },
      // The verification's read-back reads all 100 GB once: $0.01/GB retrieval for the IA classes, $0.03 for GLACIER_IR.
      STANDARD_IA: { monthlyStorage: 1.25, cumulativeStorage: 15, uploadRequests: 0.011 + 0.0154 + 1, fullRestore: 1 + 0.0014, earlyDeletePenalty: 0 },
      ONEZONE_IA: { monthlyStorage: 1, cumulativeStorage: 12, uploadRequests: 0.011 + 0.0154 + 1, fullRestore: 1 + 0.0014, earlyDeletePenalty: 0 },
      GLACIER_IR: { monthlyStorage: 0.4, cumulativeStorage: 4.8, uploadRequests: 0.03 + 0.0154 + 3, fullRestore: 3 + 0.0104, earlyDeletePenalty: 0 },
      GLACIER: {
        monthlyStorage: 0.0036 * archiveGb + 0.023 * standardOverheadGb,
        cumulativeStorage: 12 * (0.0036 * archiveGb + 0.023 * standardOverheadGb),
        uploadRequests: 0.0304 + 0.0154,
        // $0.01/GB + GET 0.0004 + restore request 0.05 + sidecar GET 0.0004, per 1000 objects.
        fullRestore: 1 + 0.0508,
        earlyDeletePenalty: 0,
      },
      DEEP_ARCHIVE: {
        monthlyStorage: 0.00099 * archiveGb + 0.023 * standardOverheadGb,
        cumulativeStorage: 12 * (0.00099 * archiveGb + 0.023 * standardOverheadGb),
        uploadRequests: 0.0504 + 0.0154,
        fullRestore: 2 + 0.1008,
        earlyDeletePenalty: 0,
      },
    });
    // INTELLIGENT_TIERING's 8.4516 beats GLACIER_IR's 4.8 + 3.0454 + 3.0104 = 10.8558 once the
    // read-back's retrieval is counted (7.8558 without it); the archive classes are not directly readable.
    expect(e.classes.find((c) => c.storageClass === 'GLACIER_IR')?.total).toBeCloseTo(10.8558, 9);
    expect(e.classes.find((c) => c.storageClass === 'INTELLIGENT_TIERING')?.total).toBeCloseTo(8.4516, 9);
    expect(e.recommended).toBe('INTELLIGENT_TIERING');
    expect(e.priceDate).toBe(PRICE_TABLE_DATE);
  });

  it('eu-central-1, 2 months: other prices, minimum-duration penalties, and the recommendation', () => {
    const e = estimateCost({ ...input, region: 'eu-central-1', months: 2 });
    const stdOverhead = 0.01663; // 3 PUTs × 0.0054 + 1 GET × 0.00043, per 1000 batches
    expectFigures(byClass(e.classes), {
      STANDARD: { monthlyStorage: 2.45, cumulativeStorage: 4.9, uploadRequests: 0.00583 + stdOverhead, fullRestore: 0.00086, earlyDeletePenalty: 0 },
      // Month 1 at 0.0245, month 2 at 0.0135; a settled month (4+) at 0.005; monitoring 0.0025.
      INTELLIGENT_TIERING: { monthlyStorage: 0.5025, cumulativeStorage: 2.4525 + 1.3525, uploadRequests: 0.02246, fullRestore: 0.00086, earlyDeletePenalty: 0 },
      // The read-back's retrieval of 100 GB: $1 for the IA classes, $3 for GLACIER_IR.
      STANDARD_IA: { monthlyStorage: 1.35, cumulativeStorage: 2.7, uploadRequests: 0.011 + stdOverhead + 1, fullRestore: 1.00143, earlyDeletePenalty: 0 },
      ONEZONE_IA: { monthlyStorage: 1.08, cumulativeStorage: 2.16, uploadRequests: 0.011 + stdOverhead + 1, fullRestore: 1.00143, earlyDeletePenalty: 0 },
      // 90-day minimum, kept 2 months: one more month of 100 GB at 0.005.
      GLACIER_IR: { monthlyStorage: 0.5, cumulativeStorage: 1, uploadRequests: 0.03 + stdOverhead + 3, fullRestore: 3.01043, earlyDeletePenalty: 0.5 },
      GLACIER: {
        monthlyStorage: 0.0045 * archiveGb + 0.0245 * standardOverheadGb,
        cumulativeStorage: 2 * (0.0045 * archiveGb + 0.0245 * standardOverheadGb),
        uploadRequests: 0.03643 + stdOverhead,
        fullRestore: 1.2 + 0.06086,
        earlyDeletePenalty: 0.0045 * archiveGb,
      },
      // 180-day minimum: four more months.
      DEEP_ARCHIVE: {
        monthlyStorage: 0.0018 * archiveGb + 0.0245 * standardOverheadGb,
        cumulativeStorage: 2 * (0.0018 * archiveGb + 0.0245 * standardOverheadGb),
        uploadRequests: 0.06043 + stdOverhead,
        fullRestore: 2.4 + 0.12086,
        earlyDeletePenalty: 4 * 0.0018 * archiveGb,
      },
    });
    // ONEZONE_IA: 2.16 + 1.02763 + 1.00143 = 4.18906 (3.18906 without the read-back's retrieval, which
    // made it the recommendation) against INTELLIGENT_TIERING's 3.82832.
    expect(e.classes.find((c) => c.storageClass === 'ONEZONE_IA')?.total).toBeCloseTo(4.18906, 9);
    expect(e.classes.find((c) => c.storageClass === 'INTELLIGENT_TIERING')?.total).toBeCloseTo(3.82832, 9);
    expect(e.recommended).toBe('INTELLIGENT_TIERING');
  });

  it('bills small objects at the 128 KB minimum and keeps them out of Intelligent-Tiering', () => {
    // 10 objects of 1 MiB / 10 = 104,857.6 bytes, under 128 KiB.
    const e = estimateCost({ region: 'us-east-1', uncompressedBytes: 10 * 1024 * 1024, records: 1000, batchSize: 100, compressionRatio: 10, months: 1 });
    const ia = e.classes.find((c) => c.storageClass === 'STANDARD_IA')!;
    expect(ia.billableGb).toBeCloseTo((10 * 131072) / GIB, 12);
    expect(ia.smallObjectPenaltyMonthly).toBeCloseTo((10 * (131072 - 104857.6) * 0.0125) / GIB, 12);
    const it = e.classes.find((c) => c.storageClass === 'INTELLIGENT_TIERING')!;
    expect(it.monthlyStorage).toBeCloseTo(0.023 * (1 / 1024), 12);
    expect(e.classes.find((c) => c.storageClass === 'STANDARD')!.smallObjectPenaltyMonthly).toBe(0);
  });

  it('rejects a region missing from the price table', () => {
    expect(() => estimateCost({ ...input, region: 'mars-north-1', months: 1 })).toThrow(/unknown region "mars-north-1".*us-east-1/);
  });

  it('prints the price date and names the recommendation in the text table', () => {
    const text = formatCostEstimate(estimateCost({ ...input, region: 'us-east-1', months: 12 }));
    expect(text).toContain(`prices of ${PRICE_TABLE_DATE}`);
    expect(text).toContain('Cheapest sensible class over 12 months, one full restore included: INTELLIGENT_TIERING');
    for (const cls of STORAGE_CLASSES) expect(text).toMatch(new RegExp(`^${cls} `, 'm'));
  });
});

describe('cost flag parsing', () => {
  const usage = (fn: () => unknown): string => {
    try {
      fn();
    } catch (error) {
      if (isAuditlogError(error) && error.code === 'USAGE' && !error.message.includes('\n')) return error.message;
      throw error;
    }
    throw new Error('expected a USAGE error');
  };

  it('reads sizes in binary units, as AWS bills them', () => {
    expect(parseSize('500GB')).toBe(500 * GIB);
    expect(parseSize('1.5 TiB')).toBe(1.5 * 1024 * GIB);
    expect(parseSize('2048')).toBe(2048);
    expect(parseSize('10kb')).toBe(10240);
  });

  it('refuses bad sizes, regions, classes and ratios with one line naming the flag', () => {
    expect(usage(() => parseSize('500XB'))).toMatch(/--size "500XB" is not a size/);
    expect(usage(() => parseSize('-5GB'))).toMatch(/--size "-5GB" is negative/);
    expect(usage(() => parseSize('GB'))).toMatch(/is not a size/);
    expect(usage(() => parseRegion('us-east-9'))).toMatch(/--region "us-east-9" is not in the price table/);
    expect(usage(() => parseClasses('STANDARD,GLACIAL'))).toMatch(/--class "GLACIAL" is not an S3 storage class/);
    expect(usage(() => parseCompressionRatio('0.5'))).toMatch(/at least 1/);
    expect(parseClasses('standard_ia, glacier_ir')).toEqual(['STANDARD_IA', 'GLACIER_IR']);
  });

  it('whole numbers are decimal digits: an empty value (an unset variable) or hex is refused, not read as 0 or 16', () => {
    // Found by probing: `--records ""` gave a $0 estimate, exit 0.
    expect(usage(() => parseWholeNumber('', '--records', 0))).toBe('--records expects a whole number of at least 0, got ""');
    expect(usage(() => parseWholeNumber('0x10', '--records', 0))).toMatch(/--records expects a whole number/);
    expect(usage(() => parseWholeNumber('1e3', '--records', 0))).toMatch(/--records expects a whole number/);
    expect(usage(() => parseWholeNumber('2000000', '--batch-size', 1, 1_000_000))).toBe('--batch-size expects a whole number from 1 to 1000000, got "2000000"');
    expect(parseWholeNumber(' 42 ', '--records', 0)).toBe(42);
    expect(parseWholeNumber('1000000', '--batch-size', 1, 1_000_000)).toBe(1_000_000);
  });

  it('rows per object: batch_size, or as many rows as fit in max_batch_bytes, at least one', () => {
    expect(rowsPerObject(10_000, 8 * 1024 * 1024, 500)).toBe(10_000);
    // 5 KB rows: 8 MiB holds 1,677 of them.
    expect(rowsPerObject(10_000, 8 * 1024 * 1024, 5_000)).toBe(1_677);
    expect(rowsPerObject(10_000, 8 * 1024 * 1024, 20 * 1024 * 1024)).toBe(1);
    expect(rowsPerObject(10_000, 8 * 1024 * 1024, 0)).toBe(10_000);
  });
});

describe('summarize (cost --config)', () => {
  it('scales each table\'s sample to its rows past retention and weights the ratio by bytes', async () => {
    const { summarize } = await import('../../src/cost/measure-tables.js');
    const m = summarize([
      // 1000 of 10,000 rows sampled: 100 KB raw → 10 KB (10:1), scaled ×10.
      { database: 'a', table: 'public.t1', rowsPastRetention: 10_000, objects: 5, rowsPerObject: 10_000, sampleRows: 1000, sampleUncompressedBytes: 100_000, sampleCompressedBytes: 10_000 },
      // Fully sampled: 50 KB → 25 KB (2:1).
      { database: 'b', table: 'public.t2', rowsPastRetention: 500, objects: 1, rowsPerObject: 10_000, sampleRows: 500, sampleUncompressedBytes: 50_000, sampleCompressedBytes: 25_000 },
      // Nothing past retention: adds nothing.
      { database: 'b', table: 'public.t3', rowsPastRetention: 0, objects: 0, rowsPerObject: 10_000, sampleRows: 0, sampleUncompressedBytes: 0, sampleCompressedBytes: 0 },
    ]);
    expect(m.records).toBe(10_500);
    expect(m.objects).toBe(6);
    expect(m.uncompressedBytes).toBe(1_050_000);
    // (1,000,000 + 50,000) / (100,000 + 25,000)
    expect(m.compressionRatio).toBeCloseTo(8.4, 12);
  });
});
