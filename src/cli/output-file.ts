/**
 * The `--output` file of a command (validate's report, the wizard's configuration): checked before
 * the work, so a path that cannot be written is one USAGE line up front instead of an error after
 * the whole run (found by probing, both commands), and the same line when the final write fails.
 */
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import path from 'node:path';
import { AuditlogError, describeError } from '../core/errors.js';

export interface OutputFile {
  path: string;
  /** What is written, for the message: "the report", "the configuration". */
  what: string;
  /**
   * Written as a temporary file renamed over it: its directory must be writable, not the file
   * itself. Otherwise the file is written in place: an existing one must be writable. Nothing is
   * created by the check: a previous file stays whole until the new one replaces it.
   */
  replacedByRename: boolean;
}

export async function requireWritableOutput(output: OutputFile): Promise<void> {
  const fail = (why: string): AuditlogError => outputFileError(output, why);
  const found = await stat(output.path).catch((error: unknown) => ((error as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : Promise.reject(fail(describeError(error)))));
  if (found?.isDirectory() === true) throw fail('it is a directory');
  const inPlace = found !== undefined && !output.replacedByRename;
  const target = inPlace ? output.path : path.dirname(path.resolve(output.path));
  await access(target, constants.W_OK).catch((error: unknown) => Promise.reject(fail(inPlace ? describeError(error) : `its directory ${target}: ${describeError(error)}`)));
}

/** The one message for an output that cannot be written, checked before the work or failing after it. */
export function outputFileError(output: Pick<OutputFile, 'path' | 'what'>, why: string, cause?: unknown): AuditlogError {
  return new AuditlogError('USAGE', `cannot write ${output.what} to ${output.path} (${why}); choose a writable --output path`, { details: { output: output.path }, ...(cause === undefined ? {} : { cause }) });
}
