/**
 * What a key under a table's prefix is, by the layout contract (DESIGN.md §3) alone (pure).
 * Anything that is not a data object or a metadata sidecar in a day partition is a stray.
 */
import { METADATA_SUFFIX, dataKeyBase, isDataKey } from '../core/archive-layout.js';
import { daysInMonth } from '../core/utc-day.js';

export type KeyKind =
  | { kind: 'data'; day: string; base: string }
  | { kind: 'metadata'; day: string; base: string }
  | { kind: 'stray' };

const PARTITION = /^year=(\d{4,})\/month=(\d{2})\/day=(\d{2})\/([^/]+)$/;

/** `relative`: the key without the table prefix. `base` is the key without its suffix: the pair's common name. */
export function classifyKey(relative: string): KeyKind {
  // Never written by this tool, and refused by the stores' key rules (validate-object-key.ts): a
  // stray to report, not an object to read (reading it failed the whole validate; found by probing).
  if (relative.includes('\\') || relative.includes('\0')) return { kind: 'stray' };
  const m = PARTITION.exec(relative);
  if (m === null) return { kind: 'stray' };
  const day = `${m[1]}-${m[2]}-${m[3]}`;
  if (!isPartitionDay(day)) return { kind: 'stray' };
  const name = m[4]!;
  if (isDataKey(name)) return { kind: 'data', day, base: dataKeyBase(relative) };
  if (name.endsWith(METADATA_SUFFIX) && name.length > METADATA_SUFFIX.length) return { kind: 'metadata', day, base: relative.slice(0, -METADATA_SUFFIX.length) };
  return { kind: 'stray' };
}

/** A real calendar day, or 0000-00-00: the partition of rows without a calendar day of their own. */
export function isPartitionDay(day: string): boolean {
  if (day === '0000-00-00') return true;
  const m = /^(\d{4,})-(\d{2})-(\d{2})$/.exec(day);
  if (m === null) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 1 || mo < 1 || mo > 12 || d < 1) return false;
  return d <= daysInMonth(y, mo);
}
