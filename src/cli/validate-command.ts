/**
 * `auditlog validate`: checks the archive's integrity and prints a report (text or JSON) to stdout
 * or --output. Exit 0 when no problem was found (warnings such as uncommitted objects allowed),
 * 1 when any was. Progress goes to stderr only, so stdout stays a clean report.
 */
import { writeFile } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { selectTargets } from '../archive/run-archive.js';
import { AuditlogError, describeError } from '../core/errors.js';
import { outputFileError, requireWritableOutput } from './output-file.js';
import type { ObjectStore } from '../storage/object-store.js';
import type { AuditTrailSource } from '../validate/check-audit.js';
import { formatBytes, formatValidateReport } from '../validate/format-validate-report.js';
import { parseDayRange } from '../validate/select-partitions.js';
import { requireLocalArchive } from './require-local-archive.js';
import { validateArchive, type ValidateProgress } from '../validate/validate-archive.js';

export interface ValidateCommandOptions {
  database?: string;
  table?: string;
  from?: string;
  to?: string;
  deep?: boolean;
  deepThreshold: number;
  concurrency: number;
  checkDatabase?: boolean;
  /** Compare the audit trail's committed objects with the store (needs compliance.audit.backend other than none). */
  checkAudit?: boolean;
  format: 'text' | 'json';
  output?: string;
  /** Seconds between progress lines on stderr; 0 turns them off. */
  progressInterval: number;
}

export interface ValidateCommandInput {
  config: Config;
  store: ObjectStore;
  options: ValidateCommandOptions;
  secrets: readonly string[];
  /** The configured audit trail(s), as `audit list` reads them; built only for --check-audit. */
  auditSources?: () => AuditTrailSource[];
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export async function runValidateCommand(input: ValidateCommandInput): Promise<number> {
  const { options } = input;
  const range = parseDayRange(options.from, options.to);
  const databases = selectTargets({ config: input.config, ...(options.database === undefined ? {} : { database: options.database }), ...(options.table === undefined ? {} : { table: options.table }) });
  if (options.checkAudit === true && input.config.compliance.audit.backend === 'none') {
    throw new AuditlogError('CONFIG_INVALID', '--check-audit compares the audit trail with the archive, and compliance.audit.backend is none: no trail records which objects were committed — configure compliance.audit (backend storage, database or both; docs/compliance.md) or validate without --check-audit', {
      details: { path: 'compliance.audit.backend' },
    });
  }
  if (options.output !== undefined) await requireWritableOutput({ path: options.output, what: 'the report', replacedByRename: false });
  await requireLocalArchive(input.config, 'nothing to validate');
  const auditSources = options.checkAudit === true ? input.auditSources?.() : undefined;
  if (options.checkAudit === true && auditSources === undefined) throw new AuditlogError('INTERNAL', '--check-audit was given without a way to read the audit trail');
  const report = await validateArchive({
    config: input.config,
    store: input.store,
    databases,
    ...(range === undefined ? {} : { range }),
    deep: options.deep === true,
    deepThreshold: options.deepThreshold,
    concurrency: options.concurrency,
    checkDatabase: options.checkDatabase === true,
    ...(auditSources === undefined ? {} : { auditSources }),
    secrets: input.secrets,
    onProgress: progressPrinter(options.progressInterval, input.stderr),
    ...(auditSources === undefined ? {} : { onAuditProgress: auditProgressPrinter(options.progressInterval, input.stderr) }),
  });
  const text = options.format === 'json' ? JSON.stringify(report, null, 1) + '\n' : formatValidateReport(report);
  if (options.output === undefined) {
    input.stdout(text);
  } else {
    const output = options.output;
    await writeFile(output, text).catch((error: unknown) => Promise.reject(outputFileError({ path: output, what: 'the report' }, describeError(error), error)));
  }
  return report.ok ? 0 : 1;
}

/** A line every `intervalSeconds` while the audit trail is read (--check-audit): a long trail takes a while. */
function auditProgressPrinter(intervalSeconds: number, stderr: (text: string) => void): ((records: number) => void) | undefined {
  if (intervalSeconds <= 0) return undefined;
  let last = Date.now();
  return (records) => {
    const now = Date.now();
    if (now - last < intervalSeconds * 1000) return;
    last = now;
    stderr(`validate: audit trail: ${records} record(s) read\n`);
  };
}

/** A line every `intervalSeconds` while objects are checked: done/total and the read rate. */
function progressPrinter(intervalSeconds: number, stderr: (text: string) => void): ((p: ValidateProgress) => void) | undefined {
  if (intervalSeconds <= 0) return undefined;
  const started = Date.now();
  let last = started;
  return (p) => {
    const now = Date.now();
    if (now - last < intervalSeconds * 1000 && p.objectsDone < p.objectsTotal) return;
    if (p.objectsDone === p.objectsTotal && now - started < intervalSeconds * 1000) return;
    last = now;
    const seconds = Math.max((now - started) / 1000, 0.001);
    stderr(`validate: ${p.objectsDone}/${p.objectsTotal} objects, ${formatBytes(p.bytesDone)} read, ${(p.bytesDone / 1e6 / seconds).toFixed(1)} MB/s\n`);
  };
}
