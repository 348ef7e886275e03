/** The Grafana dashboard and docs/operations.md name exactly the metrics the registry exports. */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { createArchiveMetrics } from '../../src/monitoring/archive-metrics.js';

const exported = async (): Promise<string[]> => (await createArchiveMetrics().registry.getMetricsAsJSON()).map((m) => m.name).sort();

describe('metric names in the docs', () => {
  it('every metric of the dashboard queries exists (histograms through _bucket)', async () => {
    const dashboard = JSON.parse(await readFile(new URL('../../docs/grafana-dashboard.json', import.meta.url), 'utf8')) as { panels: { targets: { expr: string }[] }[] };
    const used = new Set(dashboard.panels.flatMap((p) => p.targets.flatMap((t) => [...t.expr.matchAll(/auditlog_[a-z_]+/g)].map((m) => m[0].replace(/_bucket$/, '')))));
    const names = await exported();
    expect([...used].filter((n) => !names.includes(n))).toEqual([]);
    // Deleted rows equal archived rows batch by batch: one panel shows both.
    expect(names.filter((n) => !used.has(n))).toEqual(['auditlog_records_deleted_total']);
  });

  it('docs/operations.md lists every exported metric', async () => {
    const docs = await readFile(new URL('../../docs/operations.md', import.meta.url), 'utf8');
    const listed = [...docs.matchAll(/^\| `(auditlog_[a-z_]+)` \|/gm)].map((m) => m[1]).sort();
    expect(listed).toEqual(await exported());
  });
});
