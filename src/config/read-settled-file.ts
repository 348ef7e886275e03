/**
 * Reads a file that someone may be writing at this moment: the daemon reads its configuration
 * again before every run, and an editor or a deployment tool that writes in place (truncate, then
 * write) can be caught halfway. A half-written YAML file is often still valid — `retention_days:
 * 365` cut after its first digit is `retention_days: 3` — and a run on it would archive and delete
 * rows the operator meant to keep in the table for another year.
 *
 * So the file is read only once it has not changed for `settleMs` (its mtime), and read again if
 * its mtime or size changed while it was read. A file that keeps changing for longer than
 * `maxWaitMs` is read as it is then (the schema still checks it, as any file).
 */
import { readFile, stat } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

export interface SettleOptions {
  /** How long the file must have been unchanged. */
  settleMs: number;
  /** Give up waiting after this long and read the file as it is. */
  maxWaitMs: number;
  now?: () => number;
  wait?: (ms: number) => Promise<unknown>;
}

/** The file's bytes: loadConfig decodes them (and refuses what is not UTF-8). */
export async function readSettledFile(file: string, options: SettleOptions): Promise<Buffer> {
  const now = options.now ?? Date.now;
  const wait = options.wait ?? sleep;
  const deadline = now() + options.maxWaitMs;
  for (;;) {
    const before = await stat(file);
    const age = now() - before.mtimeMs;
    if (age < options.settleMs && now() < deadline) {
      await wait(Math.min(options.settleMs - age, Math.max(1, deadline - now())) + 10);
      continue;
    }
    const bytes = await readFile(file);
    const after = await stat(file);
    if ((after.mtimeMs === before.mtimeMs && after.size === before.size) || now() >= deadline) return bytes;
  }
}
