/**
 * The readable form of a validation report (pure): per table its totals and each finding with
 * its key and code, then the totals over all tables. Same content as the JSON form.
 */
import type { Counts, ValidationReport } from './validate-report.js';

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function formatCounts(c: Counts): string {
  const kinds = Object.entries(c.byCode)
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
  return `${c.objects} objects, ${c.rows} rows, ${formatBytes(c.bytes)}; ${c.problems} problem(s), ${c.warnings} warning(s)${kinds === '' ? '' : ` (${kinds})`}`;
}

export function formatValidateReport(report: ValidationReport): string {
  const out: string[] = [];
  const scope = report.range === null ? 'all days' : `days ${report.range.from} .. ${report.range.to}`;
  out.push(`validate: ${scope}; ${report.deep ? 'deep (contents read and checked)' : 'shallow (listing and metadata; --deep reads contents)'}${report.checkDatabase ? '; database checked' : ''}${report.checkAudit ? '; audit trail checked' : ''}`);
  const audit = report.audit;
  if (audit !== undefined) {
    out.push(`audit trail (${audit.sources.join(', ')}): ${audit.records} record(s) read, ${audit.recordedObjects} committed object(s) recorded in the selection`);
    if (audit.unreadable > 0) out.push(`  PROBLEM ${audit.unreadable} audit record(s) could not be read: objects they name are not checked — run \`auditlog audit verify\``);
  }
  for (const t of report.tables) {
    out.push('');
    out.push(`${t.database}/${t.schema}.${t.table}: ${formatCounts(t)}`);
    for (const f of t.findings) out.push(`  ${f.severity === 'problem' ? 'PROBLEM' : 'warning'} ${f.code} ${f.key}: ${f.message}`);
  }
  out.push('');
  out.push(`total: ${report.totals.tables} table(s), ${formatCounts(report.totals)} in ${(report.durationMs / 1000).toFixed(1)} s`);
  out.push(report.ok ? 'result: OK' : 'result: PROBLEMS FOUND');
  return out.join('\n') + '\n';
}
