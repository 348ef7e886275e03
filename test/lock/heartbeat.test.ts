/** The heartbeat loop and the lock timings of the config: small real intervals, generous waits. */
import { describe, expect, it } from 'vitest';
import { startHeartbeat } from '../../src/core/heartbeat.js';
import { configSchema, resolveLockTimings } from '../../src/config/schema.js';

const waitFor = async (cond: () => boolean, ms = 5_000): Promise<void> => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('startHeartbeat', () => {
  it('beats until stopped, never two at once', async () => {
    let beats = 0;
    let running = 0;
    let overlapped = false;
    const hb = startHeartbeat({
      intervalMs: 10,
      timeoutMs: 1_000,
      beat: async () => {
        overlapped ||= running > 0;
        running++;
        beats++;
        await new Promise((r) => setTimeout(r, 15));
        running--;
      },
      onLost: () => undefined,
    });
    await waitFor(() => beats >= 3);
    hb.stop();
    const after = beats;
    await new Promise((r) => setTimeout(r, 100));
    expect(beats).toBeLessThanOrEqual(after + 1);
    expect(overlapped).toBe(false);
  });

  it('reports a failed beat once, and stops', async () => {
    const lost: string[] = [];
    let beats = 0;
    startHeartbeat({
      intervalMs: 10,
      timeoutMs: 1_000,
      beat: async () => {
        beats++;
        throw new Error('lock gone');
      },
      onLost: (r) => lost.push(r),
    });
    await waitFor(() => lost.length > 0);
    await new Promise((r) => setTimeout(r, 100));
    expect(lost).toEqual(['heartbeat failed: lock gone']);
    expect(beats).toBe(1);
  });

  it('reports a beat that hangs past the timeout', async () => {
    const lost: string[] = [];
    startHeartbeat({ intervalMs: 10, timeoutMs: 50, beat: () => new Promise(() => undefined), onLost: (r) => lost.push(r) });
    await waitFor(() => lost.length > 0);
    expect(lost).toEqual(['heartbeat failed: no answer within 50 ms']);
  });
});

describe('lock: configuration', () => {
  const parse = (lock: unknown) => configSchema.safeParse({ local: { path: '/tmp/x' }, lock, databases: [{ name: 'a', url: 'postgres://x/y', tables: [{ name: 't', timestamp_column: 'c' }] }] });

  it('derives the timeout and the stale limit from the interval', () => {
    const r = parse({ heartbeat_interval_ms: 1_000 });
    expect(r.success && resolveLockTimings(r.data.lock)).toEqual({ heartbeatIntervalMs: 1_000, heartbeatTimeoutMs: 500, staleAfterMs: 5_000 });
    const d = parse(undefined);
    expect(d.success && resolveLockTimings(d.data.lock)).toEqual({ heartbeatIntervalMs: 30_000, heartbeatTimeoutMs: 15_000, staleAfterMs: 150_000 });
  });

  it('refuses a timeout not shorter than the interval and a stale limit under two intervals', () => {
    const r = parse({ heartbeat_interval_ms: 1_000, heartbeat_timeout_ms: 1_000, stale_after_ms: 1_500 });
    expect(r.success).toBe(false);
    const paths = r.error?.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(['lock.heartbeat_timeout_ms', 'lock.stale_after_ms']);
  });
});
