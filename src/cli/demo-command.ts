/** `auditlog demo`: runs the embedded default and tells the user where to look. */
import type { Logger } from 'pino';
import { DEMO_RETENTION_DAYS, runDemo } from '../demo/run-demo.js';
import { formatRunSummary } from './format-summary.js';

export interface DemoCommandOptions {
  dir: string;
  rows: number;
  runId: string;
  logger: Logger;
  toolVersion: string;
  stdout: (text: string) => void;
  /** --json: the summary (with where the archive is) as one JSON document, as `archive --json` prints its own. */
  json?: boolean;
}

export async function runDemoCommand(options: DemoCommandOptions): Promise<number> {
  const result = await runDemo(options);
  const { summary, archiveDir, dataObjects } = result;
  if (options.json === true) {
    options.stdout(JSON.stringify({ ...summary, archive: { path: archiveDir, dataObjects }, table: { rowsBefore: result.rowsBefore, rowsAfter: result.rowsAfter } }) + '\n');
    return summary.failed > 0 ? 1 : 0;
  }
  const out: string[] = [formatRunSummary(summary)];
  out.push(`table public.audit_log: ${result.rowsBefore} rows before, ${result.rowsAfter} after (rows older than ${DEMO_RETENTION_DAYS} days moved to the archive)`);
  out.push(`archive: ${archiveDir}`);
  out.push(`  ${dataObjects.length} data objects (*.jsonl.gz), each with a *.metadata.json sidecar, laid out as <database>/<schema>.<table>/year=/month=/day=/`);
  for (const key of dataObjects.slice(0, 3)) out.push(`  ${key}`);
  if (dataObjects.length > 3) out.push(`  ...`);
  if (dataObjects[0] !== undefined) {
    out.push('look inside:');
    out.push(`  zcat '${archiveDir}/${dataObjects[0]}' | head -2`);
    out.push(`  cat '${archiveDir}/${dataObjects[0].replace(/\.jsonl\.gz$/, '.metadata.json')}'`);
  }
  options.stdout(out.join('\n') + '\n');
  return summary.failed > 0 ? 1 : 0;
}
