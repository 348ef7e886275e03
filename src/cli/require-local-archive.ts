/**
 * The commands that read an existing archive (validate, audit list|verify, status, watermarks,
 * restore, cleanup) refuse a `local.path` that is not a directory. Listing a missing directory finds nothing,
 * so each of them reported an empty, clean archive ("0 problem(s)", "none", exit 0) for what is
 * most likely a typo in the path: for a cron check, a wrong path, not a healthy archive.
 * `archive` does not call this: its first run creates the directory. An S3 bucket that does not
 * exist needs nothing of the kind: every request fails with STORAGE_NOT_FOUND (and an empty
 * prefix cannot be told from a new one).
 */
import { stat } from 'node:fs/promises';
import type { Config } from '../config/schema.js';
import { AuditlogError } from '../core/errors.js';

/** `consequence` says what the command cannot do without it, e.g. "nothing to validate". */
export async function requireLocalArchive(config: Pick<Config, 'local'>, consequence: string): Promise<void> {
  if (config.local === undefined) return;
  const found = await stat(config.local.path).catch(() => undefined);
  if (found?.isDirectory() !== true) {
    throw new AuditlogError('CONFIG_INVALID', `local.path ${config.local.path} is not a directory: ${consequence}; check local.path in the config (an archive run creates the directory on its first run)`, {
      details: { path: 'local.path' },
    });
  }
}
