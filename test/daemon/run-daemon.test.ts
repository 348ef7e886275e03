/** The schedule loop alone: runs at cron times, never overlaps, stops on abort, bad cron is a USAGE error. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Cron } from 'croner';
import { AuditlogError } from '../../src/core/errors.js';
import { MAX_SLEEP_CHUNK_MS, parseSchedule, runDaemon, scheduleProblem } from '../../src/daemon/run-daemon.js';

describe('parseSchedule', () => {
  it('reads 5 fields (minutes) or 6 (seconds first) in UTC, and names the source of a bad expression', () => {
    const daily = parseSchedule('0 2 * * *', 'daemon.schedule');
    expect(daily.nextRun(new Date('2026-01-01T03:00:00Z'))?.toISOString()).toBe('2026-01-02T02:00:00.000Z');
    expect(parseSchedule('*/2 * * * * *', '--schedule').nextRun(new Date('2026-01-01T00:00:01Z'))?.toISOString()).toBe('2026-01-01T00:00:02.000Z');
    expect(() => parseSchedule('every night', '--schedule')).toThrow(/^--schedule "every night" is not a valid cron expression: .* \(e\.g\. "0 2 \* \* \*"/);
  });

  it('refuses a valid expression that never fires (30 February) as a USAGE error naming the source', () => {
    for (const [expression, source] of [['0 0 30 2 *', '--schedule'], ['0 0 0 31 4 *', 'daemon.schedule']] as const) {
      let error: unknown;
      try {
        parseSchedule(expression, source);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(AuditlogError);
      expect((error as AuditlogError).code).toBe('USAGE');
      expect((error as AuditlogError).exitCode).toBe(2);
      expect((error as AuditlogError).message).toBe(`${source} "${expression}" never fires: no date matches it (e.g. day 30 of February, or a year already past), so the daemon would have nothing to run`);
    }
    expect(scheduleProblem('0 0 30 2 *')).toMatch(/^never fires/);
    expect(scheduleProblem('0 0 29 2 *')).toBeUndefined();
    // A seventh field is the year: one already past never fires either; one to come does.
    expect(scheduleProblem('0 0 2 * * * 2020')).toMatch(/^never fires: no date matches it \(e\.g\. day 30 of February, or a year already past\)/);
    expect(scheduleProblem('0 0 2 * * * 2099')).toBeUndefined();
  });
});

describe('runDaemon', () => {
  it('runs once per due time, one run at a time, skipping times that pass during a long run; abort ends the wait', async () => {
    const controller = new AbortController();
    let running = 0;
    let maxConcurrent = 0;
    const starts: number[] = [];
    const skipped: number[] = [];
    const started = Date.now();
    await runDaemon({
      schedule: parseSchedule('* * * * * *', 'test'),
      signal: controller.signal,
      onSkipped: (n) => skipped.push(n),
      runOnce: async () => {
        running++;
        maxConcurrent = Math.max(maxConcurrent, running);
        starts.push(Date.now());
        // The first run lasts over two scheduled seconds; the second ends the daemon.
        if (starts.length === 1) await new Promise((r) => setTimeout(r, 2_200));
        else controller.abort();
        running--;
      },
    });
    expect(starts).toHaveLength(2);
    expect(maxConcurrent).toBe(1);
    expect(skipped).toHaveLength(1);
    expect(skipped[0]).toBeGreaterThanOrEqual(2);
    // The second run waited for the first to end.
    expect(starts[1]! - starts[0]!).toBeGreaterThanOrEqual(2_200);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('a stop during a long run reports no skipped times: the daemon is ending, not falling behind', async () => {
    // Found by probing: every daemon shutdown mid-run logged "scheduled times passed ... skipped".
    const controller = new AbortController();
    const skipped: number[] = [];
    let runs = 0;
    await runDaemon({
      schedule: parseSchedule('* * * * * *', 'test'),
      signal: controller.signal,
      onSkipped: (n) => skipped.push(n),
      runOnce: async () => {
        runs++;
        // The stop arrives early in a run that goes on over two more scheduled seconds.
        setTimeout(() => controller.abort(), 100);
        await new Promise((r) => setTimeout(r, 2_200));
      },
    });
    expect(runs).toBe(1);
    expect(skipped).toEqual([]);
  });

  it('a schedule with no next time is an error, not a clean stop', async () => {
    let runs = 0;
    const never = new Cron('0 0 30 2 *', { timezone: 'UTC', paused: true });
    await expect(runDaemon({ schedule: never, signal: new AbortController().signal, runOnce: async () => void runs++ })).rejects.toMatchObject({
      code: 'USAGE',
      message: expect.stringMatching(/^the schedule "0 0 30 2 \*" has no run time after /) as unknown,
    });
    expect(runs).toBe(0);
  });

  it('an abort while waiting returns at once without running', async () => {
    const controller = new AbortController();
    let runs = 0;
    // A clock that stands at 03:00 UTC: on the real clock, a test started in the 50 ms before 02:00
    // UTC would see the daily run fire before the abort (runs 1).
    const now = (): Date => new Date('2026-01-02T03:00:00Z');
    const done = runDaemon({ schedule: parseSchedule('0 2 * * *', 'test'), signal: controller.signal, now, runOnce: async () => void runs++ });
    setTimeout(() => controller.abort(), 50);
    await done;
    expect(runs).toBe(0);
  });

  describe('a next run more than setTimeout\'s 2^31-1 ms (~24.8 days) away', () => {
    afterEach(() => {
      vi.useRealTimers();
      vi.restoreAllMocks();
    });

    it('waits in capped chunks: no timer over the limit, no TimeoutOverflowWarning, no busy loop', async () => {
      const controller = new AbortController();
      const warnings: string[] = [];
      const onWarning = (w: Error): void => void warnings.push(w.name);
      process.on('warning', onWarning);
      const delays: number[] = [];
      const realSetTimeout = globalThis.setTimeout;
      vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
        delays.push(ms ?? 0);
        return realSetTimeout(fn, ms);
      }) as typeof setTimeout);
      // The clock stands still on 2 January: the yearly run is 364 days (~31.4e9 ms) away.
      let clockReads = 0;
      const now = (): Date => {
        clockReads++;
        return new Date('2026-01-02T00:00:00Z');
      };
      let runs = 0;
      const done = runDaemon({ schedule: parseSchedule('0 0 1 1 *', 'test'), signal: controller.signal, now, runOnce: async () => void runs++ });
      await new Promise((r) => realSetTimeout(r, 300));
      controller.abort();
      await done;
      process.off('warning', onWarning);
      expect(runs).toBe(0);
      expect(warnings.filter((w) => w === 'TimeoutOverflowWarning')).toEqual([]);
      expect(delays.length).toBeGreaterThan(0);
      expect(Math.max(...delays)).toBeLessThanOrEqual(MAX_SLEEP_CHUNK_MS);
      expect(MAX_SLEEP_CHUNK_MS).toBeLessThanOrEqual(2 ** 31 - 1);
      // Overflowed timers fire after 1 ms: ~300 clock reads in 300 ms. A chunked wait reads it once or twice.
      expect(clockReads).toBeLessThan(5);
    });

    it('still runs exactly on time after a wait of many chunks', async () => {
      vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
      vi.setSystemTime(new Date('2026-01-02T00:00:00Z'));
      const controller = new AbortController();
      const starts: string[] = [];
      const done = runDaemon({
        schedule: parseSchedule('0 0 1 1 *', 'test'),
        signal: controller.signal,
        runOnce: async () => {
          starts.push(new Date().toISOString());
          controller.abort();
        },
      });
      await vi.advanceTimersByTimeAsync(364 * 24 * 3_600_000 - 1_000);
      expect(starts).toEqual([]);
      await vi.advanceTimersByTimeAsync(2_000);
      await done;
      expect(starts).toEqual(['2027-01-01T00:00:00.000Z']);
    });
  });
});
