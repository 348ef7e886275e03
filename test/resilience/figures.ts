/**
 * The suite's figures (issue #3 asks for them in docs/reliability.md): each scenario records what
 * was injected where, the invariant checked and the checker's counts; the global setup
 * (figures-setup.ts) sums them at the end of the run.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { inject } from 'vitest';
import type { InvariantReport } from '../helpers/invariant-checker.js';

declare module 'vitest' {
  export interface ProvidedContext {
    resilienceFiguresDir: string;
  }
}

export interface ScenarioFigures {
  scenario: string;
  injected: string;
  invariant: string;
  rowsChecked: number;
  rowsArchived: number;
  rowsLost: number;
  rowsDuplicated: number;
  rowsInTableAndArchive: number;
  staleCopies: number;
  problems: number;
}

export const NO_LOSS_EXACTLY_ONCE =
  'every row in the table or in exactly one committed object, content identical to its last version; no committed object lists a row still in the table';

export async function recordScenario(scenario: string, injected: string, report: InvariantReport, invariant = NO_LOSS_EXACTLY_ONCE): Promise<void> {
  const figures: ScenarioFigures = {
    scenario,
    injected,
    invariant,
    rowsChecked: report.rowsChecked,
    rowsArchived: report.rowsArchived,
    rowsLost: report.rowsLost,
    rowsDuplicated: report.rowsDuplicated,
    rowsInTableAndArchive: report.rowsInTableAndArchive,
    staleCopies: report.staleCopies,
    problems: report.problems.length,
  };
  const file = scenario.replace(/[^A-Za-z0-9]+/g, '-').toLowerCase().slice(0, 120);
  await writeFile(path.join(inject('resilienceFiguresDir'), `${file}.json`), JSON.stringify(figures));
}
