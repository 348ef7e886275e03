/**
 * The report of `auditlog validate` (pure): per table, what was looked at and every finding;
 * totals over all tables. The text and JSON forms are built from this one structure.
 */
import type { AuditTrailSummary } from './check-audit.js';
import type { DayRange } from './select-partitions.js';
import { severityOf, type Finding, type ProblemCode, type Severity } from './problem-codes.js';

export interface ReportedFinding extends Finding {
  severity: Severity;
}

export interface Counts {
  /** Data objects listed (uncommitted ones included). */
  objects: number;
  /** Records of committed objects whose metadata could be read. */
  rows: number;
  /** Stored bytes of the data objects listed. */
  bytes: number;
  problems: number;
  warnings: number;
  byCode: Partial<Record<ProblemCode, number>>;
}

export interface TableValidation extends Counts {
  database: string;
  schema: string;
  table: string;
  findings: ReportedFinding[];
}

export interface ValidationReport {
  /** No problem found (warnings allowed) and, with --check-audit, every audit record read: exit 0. */
  ok: boolean;
  /** Whether object contents were read and checked (--deep, or few enough objects). */
  deep: boolean;
  range: DayRange | null;
  checkDatabase: boolean;
  /** Whether the audit trail was compared with the store (--check-audit); `audit` says what was read. */
  checkAudit: boolean;
  audit?: AuditTrailSummary;
  durationMs: number;
  totals: Counts & { tables: number };
  tables: TableValidation[];
}

export function emptyCounts(): Counts {
  return { objects: 0, rows: 0, bytes: 0, problems: 0, warnings: 0, byCode: {} };
}

/** One finding per object and code (the first wins), sorted by key then code, and tallied. */
export function summarizeTable(id: { database: string; schema: string; table: string }, counts: Pick<Counts, 'objects' | 'rows' | 'bytes'>, findings: readonly Finding[]): TableValidation {
  const unique = new Map<string, ReportedFinding>();
  for (const f of findings) {
    const id = `${f.key}\u0000${f.code}`;
    if (!unique.has(id)) unique.set(id, { ...f, severity: severityOf(f.code) });
  }
  const sorted = [...unique.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : a.code < b.code ? -1 : a.code > b.code ? 1 : 0));
  const table: TableValidation = { ...id, ...emptyCounts(), ...counts, findings: sorted };
  for (const f of sorted) {
    table.byCode[f.code] = (table.byCode[f.code] ?? 0) + 1;
    if (f.severity === 'problem') table.problems++;
    else table.warnings++;
  }
  return table;
}

export function buildReport(tables: TableValidation[], options: { deep: boolean; range: DayRange | undefined; checkDatabase: boolean; audit?: AuditTrailSummary; durationMs: number }): ValidationReport {
  const totals = { tables: tables.length, ...emptyCounts() };
  for (const t of tables) {
    totals.objects += t.objects;
    totals.rows += t.rows;
    totals.bytes += t.bytes;
    totals.problems += t.problems;
    totals.warnings += t.warnings;
    for (const [code, n] of Object.entries(t.byCode) as [ProblemCode, number][]) totals.byCode[code] = (totals.byCode[code] ?? 0) + n;
  }
  // An unreadable record may have named an object that is gone: the audit check is incomplete.
  // Counted with the problems (found in review: "0 problem(s)" above "PROBLEMS FOUND", and a
  // script reading totals.problems saw a clean run); no byCode entry: it is about no object.
  totals.problems += options.audit?.unreadable ?? 0;
  const ok = totals.problems === 0;
  return {
    ok,
    deep: options.deep,
    range: options.range ?? null,
    checkDatabase: options.checkDatabase,
    checkAudit: options.audit !== undefined,
    ...(options.audit === undefined ? {} : { audit: options.audit }),
    durationMs: options.durationMs,
    totals,
    tables,
  };
}
