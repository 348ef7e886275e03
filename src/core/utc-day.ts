/**
 * Calendar days given on the command line (`--from`, `--to`, `--since`): YYYY-MM-DD, UTC. Pure.
 * One parser for every command, so `2026-13-01`, `2026-02-30` or `2026-1-1` are the same one-line
 * USAGE error everywhere (exit 2), never a RangeError or a day silently rolled into the next month.
 */
import { AuditlogError } from './errors.js';

const DAY = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Whether `value` is a real calendar day written YYYY-MM-DD (no 2026-02-30, no month 13 or 00). */
export function isUtcDay(value: string): boolean {
  const m = DAY.exec(value);
  if (m === null) return false;
  const [year, month, day] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (month < 1 || month > 12 || day < 1) return false;
  return day <= daysInMonth(year, month);
}

/** Days of a month: day 0 of the next one. setUTCFullYear, because Date.UTC maps years 0–99 to 1900–1999. */
export function daysInMonth(year: number, month: number): number {
  const date = new Date(0);
  date.setUTCFullYear(year, month, 0);
  return date.getUTCDate();
}

/** `value` if it is a calendar day (isUtcDay); otherwise a USAGE error naming `flag`. */
export function parseUtcDay(value: string, flag: string): string {
  if (!isUtcDay(value)) throw new AuditlogError('USAGE', `${flag} expects a calendar day as YYYY-MM-DD (UTC), got "${value}"`);
  return value;
}
