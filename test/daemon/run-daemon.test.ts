/** The schedule loop alone: runs at cron times, never overlaps, stops on abort, bad cron is a USAGE error. */
import { describe, expect, it } from 'vitest';
import { parseSchedule, runDaemon } from '../../src/daemon/run-daemon.js';

describe('parseSchedule', () => {
  it('reads 5 fields (minutes) or 6 (seconds first) in UTC, and names the source of a bad expression', () => {
    const daily = parseSchedule('0 2 * * *', 'daemon.schedule');
    expect(daily.nextRun(new Date('2026-01-01T03:00:00Z'))?.toISOString()).toBe('2026-01-02T02:00:00.000Z');
    expect(parseSchedule('*/2 * * * * *', '--schedule').nextRun(new Date('2026-01-01T00:00:01Z'))?.toISOString()).toBe('2026-01-01T00:00:02.000Z');
    expect(() => parseSchedule('every night', '--schedule')).toThrow(/^--schedule "every night" is not a valid cron expression: .* \(e\.g\. "0 2 \* \* \*"/);
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

  it('an abort while waiting returns at once without running', async () => {
    const controller = new AbortController();
    let runs = 0;
    const done = runDaemon({ schedule: parseSchedule('0 2 * * *', 'test'), signal: controller.signal, runOnce: async () => void runs++ });
    setTimeout(() => controller.abort(), 50);
    await done;
    expect(runs).toBe(0);
  });
});
