/**
 * Runs `beat` every interval until stopped, one at a time (a slow beat delays the next, never
 * overlaps it). A beat that throws, or does not settle within `timeoutMs`, reports the lock lost
 * once and ends the heartbeat. Timers are unref'd: a forgotten heartbeat never keeps a process alive.
 */
export interface HeartbeatOptions {
  intervalMs: number;
  /** Shorter than the interval, so a hung beat is noticed before the next one is due. */
  timeoutMs: number;
  beat: () => Promise<void>;
  onLost: (reason: string) => void;
}

export interface Heartbeat {
  stop(): void;
}

export function startHeartbeat(o: HeartbeatOptions): Heartbeat {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const schedule = (): void => {
    if (stopped) return;
    timer = setTimeout(() => void tick(), o.intervalMs);
    timer.unref();
  };
  const tick = async (): Promise<void> => {
    if (stopped) return;
    let timeout: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timeout = setTimeout(() => reject(new Error(`no answer within ${o.timeoutMs} ms`)), o.timeoutMs);
      timeout.unref();
    });
    try {
      await Promise.race([o.beat(), expired]);
    } catch (error) {
      if (stopped) return;
      stopped = true;
      o.onLost(`heartbeat failed: ${error instanceof Error ? error.message : String(error)}`);
      return;
    } finally {
      clearTimeout(timeout);
    }
    schedule();
  };
  schedule();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
