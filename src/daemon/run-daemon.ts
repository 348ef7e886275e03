/**
 * The daemon's schedule loop: wait for the next cron time, run, repeat, until stopped. The next
 * time is computed only after a run ends, so runs never overlap: times that pass while a run is
 * still going are skipped (and counted), not queued. Nothing here touches the process; the CLI
 * turns SIGTERM into the abort signal.
 */
import { Cron } from 'croner';
import { AuditlogError } from '../core/errors.js';

/** A cron expression read in UTC (5 fields, 6 with seconds first, or 7 with seconds first and a year last); a USAGE error names where it came from. */
export function parseSchedule(expression: string, source: string): Cron {
  const schedule = readSchedule(expression);
  if (typeof schedule === 'string') throw new AuditlogError('USAGE', `${source} "${expression}" ${schedule}`);
  return schedule;
}

/** Why `expression` cannot drive the daemon ("is not a valid cron expression: ..."), or undefined when it can. */
export function scheduleProblem(expression: string): string | undefined {
  const schedule = readSchedule(expression);
  return typeof schedule === 'string' ? schedule : undefined;
}

function readSchedule(expression: string): Cron | string {
  let schedule: Cron;
  try {
    schedule = new Cron(expression, { timezone: 'UTC', paused: true });
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return `is not a valid cron expression: ${reason} (e.g. "0 2 * * *" for 02:00 UTC daily)`;
  }
  // A valid expression can still match no date at all (30 February, 31 April): the daemon would
  // start, find no next time and stop as if asked to. Refuse it before anything starts.
  if (schedule.nextRun() === null) return 'never fires: no date matches it (e.g. day 30 of February, or a year already past), so the daemon would have nothing to run';
  return schedule;
}

export interface DaemonOptions {
  schedule: Cron;
  /** One archive run; it must stop starting new batches once `signal` is aborted. */
  runOnce: (signal: AbortSignal) => Promise<void>;
  signal: AbortSignal;
  now?: () => Date;
  onWaiting?: (next: Date) => void;
  /** Cron times that passed while a run was going (skipped so runs never overlap). */
  onSkipped?: (missed: number) => void;
}

export async function runDaemon(options: DaemonOptions): Promise<void> {
  const now = options.now ?? (() => new Date());
  while (!options.signal.aborted) {
    const next = options.schedule.nextRun(now());
    // parseSchedule refuses schedules that never fire; ending here silently would look like a clean stop.
    if (next === null) throw new AuditlogError('USAGE', `the schedule "${options.schedule.getPattern() ?? ''}" has no run time after ${now().toISOString()}`);
    options.onWaiting?.(next);
    await sleepUntil(next, now, options.signal);
    if (options.signal.aborted) return;
    await options.runOnce(options.signal);
    // A stop ends the loop: the times that passed during that run are not missed by a daemon
    // that is going away, and reporting them made every shutdown log a false warning.
    if (options.signal.aborted) return;
    const missed = countBetween(options.schedule, next, now());
    if (missed > 0) options.onSkipped?.(missed);
  }
}

function countBetween(schedule: Cron, from: Date, to: Date): number {
  let n = 0;
  for (let t = schedule.nextRun(from); t !== null && t <= to && n < 10_000; t = schedule.nextRun(t)) n++;
  return n;
}

/**
 * Longest single timer of the wait. setTimeout cannot wait more than 2^31-1 ms (~24.8 days): a
 * longer delay fires after 1 ms with a TimeoutOverflowWarning, which made the wait a busy loop
 * when the next run was far away (a yearly schedule, a monthly one late in the month). An hour
 * also lets the wait notice a clock that jumped (suspend, NTP) soon after it did.
 */
export const MAX_SLEEP_CHUNK_MS = 60 * 60 * 1000;

function sleepUntil(at: Date, now: () => Date, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    let timer: NodeJS.Timeout | undefined;
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    // Timers may fire a millisecond early, and a long wait is cut into chunks: wait again until the
    // clock has really reached `at`, so a run never starts in the second before its scheduled time.
    const arm = (): void => {
      if (signal.aborted) return done();
      const left = at.getTime() - now().getTime();
      if (left <= 0) done();
      else timer = setTimeout(arm, Math.min(left, MAX_SLEEP_CHUNK_MS));
    };
    signal.addEventListener('abort', done, { once: true });
    arm();
  });
}
