/**
 * `auditlog cleanup`: aborts orphaned multipart uploads under the archive prefix (and deletes
 * their resume records), or removes temp files of interrupted writes in a `local:` directory.
 * Exit 0 when everything found was removed (or nothing was found), 1 when a removal failed.
 */
import type { CleanupItem, ObjectStore } from '../storage/object-store.js';
import { cleanupInterruptedWrites, type CleanupRun } from '../storage/cleanup-interrupted.js';

export interface CleanupCommandInput {
  store: ObjectStore;
  olderThanHours: number;
  dryRun: boolean;
  json: boolean;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export async function runCleanupCommand(input: CleanupCommandInput): Promise<number> {
  const run = await cleanupInterruptedWrites(input.store, { olderThanHours: input.olderThanHours, dryRun: input.dryRun });
  if (input.json) input.stdout(JSON.stringify(run) + '\n');
  else input.stdout(formatCleanup(run));
  for (const item of run.items.filter((i) => i.action === 'failed')) input.stderr(`error: could not remove ${describeItem(item)}: ${item.error ?? 'unknown error'}\n`);
  return run.failed > 0 ? 1 : 0;
}

export function formatCleanup(run: CleanupRun): string {
  const lines: string[] = [];
  const age = `older than ${run.olderThanHours}h (before ${run.cutoff})`;
  if (!run.supported) return `nothing to clean in ${run.storage}: this storage keeps no leftovers of interrupted writes\n`;
  for (const item of run.items) lines.push(`${ACTION_LABEL[item.action].padEnd(12)} ${describeItem(item)}`);
  const count = (action: CleanupItem['action']): number => run.items.filter((i) => i.action === action).length;
  const done = run.dryRun
    ? `${count('would-abort')} upload(s) would be aborted, ${count('would-delete')} file(s) would be deleted (dry run: nothing changed)`
    : `${count('aborted')} upload(s) aborted, ${count('deleted')} file(s) deleted${run.failed > 0 ? `, ${run.failed} failed` : ''}`;
  lines.push(`cleanup of ${run.storage}, leftovers ${age}: ${done}; ${run.kept} kept (younger, in progress, or not written by auditlog)`);
  return lines.join('\n') + '\n';
}

const ACTION_LABEL: Record<CleanupItem['action'], string> = {
  aborted: 'aborted',
  deleted: 'deleted',
  'would-abort': 'would abort',
  'would-delete': 'would delete',
  failed: 'FAILED',
};

function describeItem(item: CleanupItem): string {
  const what = item.kind === 'multipart-upload' ? 'multipart upload' : item.kind === 'multipart-state' ? 'resume record' : 'temp file';
  const extra = [item.uploadId === undefined ? undefined : `upload ${item.uploadId}`, item.since === undefined ? undefined : `since ${item.since}`].filter((x) => x !== undefined);
  return `${what} ${item.key}${extra.length > 0 ? ` (${extra.join(', ')})` : ''}`;
}
