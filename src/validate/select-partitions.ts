/**
 * Which key prefixes to list for a date range (pure). The archive is partitioned by UTC day
 * (`year=/month=/day=`), so a range is listed as whole years, whole months and single days — the
 * fewest prefixes that cover it — and never as the whole table (or bucket).
 */
import { AuditlogError } from '../core/errors.js';
import { parseUtcDay } from '../core/utc-day.js';
import { daysInMonth } from '../core/utc-day.js';

export interface DayRange {
  /** YYYY-MM-DD, inclusive. */
  from: string;
  /** YYYY-MM-DD, inclusive. */
  to: string;
}

/** A YYYY-MM-DD calendar day (UTC); a USAGE error naming the flag otherwise. */
export const parseDay = parseUtcDay;

/** The range of --from/--to; open ends reach the first/last representable day. */
export function parseDayRange(from: string | undefined, to: string | undefined): DayRange | undefined {
  if (from === undefined && to === undefined) return undefined;
  const range = { from: from === undefined ? '0001-01-01' : parseDay(from, '--from'), to: to === undefined ? '9999-12-31' : parseDay(to, '--to') };
  if (range.from > range.to) throw new AuditlogError('USAGE', `--from ${range.from} is after --to ${range.to}; give the earlier day as --from`);
  return range;
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** Partition prefixes (relative to the table prefix, each ending in '/') covering the range exactly. */
export function partitionPrefixes(range: DayRange): string[] {
  const [fy, fm, fd] = range.from.split('-').map(Number) as [number, number, number];
  const [ty, tm, td] = range.to.split('-').map(Number) as [number, number, number];
  const out: string[] = [];
  for (let y = fy; y <= ty; y++) {
    const firstMonth = y === fy ? fm : 1;
    const lastMonth = y === ty ? tm : 12;
    const fromDayOf = (m: number): number => (y === fy && m === fm ? fd : 1);
    const toDayOf = (m: number): number => (y === ty && m === tm ? td : daysInMonth(y, m));
    const year = `year=${pad(y, 4)}/`;
    if (firstMonth === 1 && lastMonth === 12 && fromDayOf(1) === 1 && toDayOf(12) === 31) {
      out.push(year);
      continue;
    }
    for (let m = firstMonth; m <= lastMonth; m++) {
      const month = `${year}month=${pad(m, 2)}/`;
      const first = fromDayOf(m);
      const last = toDayOf(m);
      if (first === 1 && last === daysInMonth(y, m)) {
        out.push(month);
        continue;
      }
      for (let d = first; d <= last; d++) out.push(`${month}day=${pad(d, 2)}/`);
    }
  }
  return out;
}

/** Whether a day (YYYY-MM-DD, or 0000-00-00 for rows without a calendar day) lies in the range. */
export function isDayInRange(day: string, range: DayRange | undefined): boolean {
  return range === undefined || (day >= range.from && day <= range.to);
}
