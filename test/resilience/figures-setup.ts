/**
 * Vitest global setup: a fresh directory for the resilience scenarios' figures, summed and printed
 * when the run ends (and kept in <tmp>/auditlog-resilience-latest.json). Runs without resilience
 * tests print nothing.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import type { ScenarioFigures } from './figures.js';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-resilience-'));
  project.provide('resilienceFiguresDir', dir);
  return async () => {
    const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));
    if (files.length > 0) {
      const scenarios = await Promise.all(files.sort().map(async (f) => JSON.parse(await readFile(path.join(dir, f), 'utf8')) as ScenarioFigures));
      const sum = (pick: (s: ScenarioFigures) => number): number => scenarios.reduce((n, s) => n + pick(s), 0);
      const summary = {
        finishedAt: new Date().toISOString(),
        scenarios: scenarios.length,
        rowsChecked: sum((s) => s.rowsChecked),
        rowsArchived: sum((s) => s.rowsArchived),
        rowsLost: sum((s) => s.rowsLost),
        rowsDuplicated: sum((s) => s.rowsDuplicated),
        rowsInTableAndArchive: sum((s) => s.rowsInTableAndArchive),
        staleCopies: sum((s) => s.staleCopies),
        details: scenarios,
      };
      const latest = path.join(tmpdir(), 'auditlog-resilience-latest.json');
      await writeFile(latest, JSON.stringify(summary, null, 2));
      const { details: _details, ...totals } = summary;
      process.stdout.write(`\nresilience figures (${latest}): ${JSON.stringify(totals)}\n`);
    }
    await rm(dir, { recursive: true, force: true });
  };
}
