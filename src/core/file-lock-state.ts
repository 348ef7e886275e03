/**
 * The content of a table's lock file (local mode) and the decision whether it is stale. Pure:
 * the caller reads the file, its mtime, the clock and whether the holder's process is alive.
 */
export interface FileLockContent {
  pid: number;
  hostname: string;
  run_id: string;
  acquired_at: string;
  heartbeat_at: string;
}

/** The lock file's JSON, or undefined when it is not one (a crash mid-write, or someone else's file). */
export function parseFileLockContent(text: string): FileLockContent | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const v = value as Record<string, unknown>;
  if (!Number.isInteger(v.pid) || typeof v.hostname !== 'string' || typeof v.run_id !== 'string') return undefined;
  if (typeof v.acquired_at !== 'string' || typeof v.heartbeat_at !== 'string') return undefined;
  return { pid: v.pid as number, hostname: v.hostname, run_id: v.run_id, acquired_at: v.acquired_at, heartbeat_at: v.heartbeat_at };
}

export function serializeFileLockContent(content: FileLockContent): string {
  return JSON.stringify(content) + '\n';
}

export interface FileLockObservation {
  /** undefined: the file could not be parsed. */
  content: FileLockContent | undefined;
  /** The file's mtime: the heartbeat's age when the content cannot be read. */
  modifiedAtMs: number;
  nowMs: number;
  localHostname: string;
  /** Whether the holder's pid is alive on this host; only asked when the holder is on this host. */
  holderAlive: (pid: number) => boolean;
  staleAfterMs: number;
}

export type FileLockVerdict = { stale: false } | { stale: true; reason: string };

/**
 * A lock is stale when its holder is provably gone: a process on this host that no longer exists,
 * or (any host — another host's pids cannot be checked) a heartbeat older than `staleAfterMs`.
 */
export function judgeFileLock(o: FileLockObservation): FileLockVerdict {
  const c = o.content;
  if (c === undefined) {
    const age = o.nowMs - o.modifiedAtMs;
    // A file being created right now is briefly empty: only an old unreadable file is stale.
    return age > o.staleAfterMs ? { stale: true, reason: `unreadable lock file, unchanged for ${formatDuration(age)}` } : { stale: false };
  }
  if (c.hostname === o.localHostname && !o.holderAlive(c.pid)) {
    return { stale: true, reason: `process ${c.pid} on ${c.hostname} no longer exists` };
  }
  const beatMs = Date.parse(c.heartbeat_at);
  // A heartbeat further ahead than a lock can go stale was written by a clock ahead of ours: it
  // would keep a dead holder's lock live until that clock's time (days, with a badly set one —
  // found by probing: every run refused, "last heartbeat … (0s ago)"). The file's mtime, which a
  // live holder's every heartbeat renews, decides then, as for an unparsable heartbeat.
  const future = !Number.isNaN(beatMs) && beatMs - o.nowMs > o.staleAfterMs;
  const age = o.nowMs - (Number.isNaN(beatMs) || future ? o.modifiedAtMs : beatMs);
  if (age > o.staleAfterMs) {
    const why = future ? `unchanged for ${formatDuration(age)} with its last heartbeat ${c.heartbeat_at} in the future (the holder's clock is ahead)` : `last heartbeat ${formatDuration(age)} ago`;
    return { stale: true, reason: `${why}, longer than stale_after_ms (${o.staleAfterMs} ms)` };
  }
  return { stale: false };
}

/** "pid 12 on host-a (run R), holding since T (4m 2s), last heartbeat T2 (3s ago)", for messages and status. */
export function describeFileLockHolder(c: FileLockContent, nowMs: number): string {
  const ago = (iso: string): string => {
    const t = Date.parse(iso);
    if (Number.isNaN(t)) return '';
    // "0s ago" for a time ahead of ours hid a skewed clock.
    return t > nowMs + 1000 ? ` (${formatDuration(t - nowMs)} in the future: the holder's clock is ahead)` : ` (${formatDuration(nowMs - t)} ago)`;
  };
  return `pid ${c.pid} on ${c.hostname} (run ${c.run_id}), holding since ${c.acquired_at}${ago(c.acquired_at)}, last heartbeat ${c.heartbeat_at}${ago(c.heartbeat_at)}`;
}

/** 0s, 42s, 3m 5s, 2h 0m, 3d 4h: coarse on purpose, for people reading a message. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h ${m % 60}m`;
  return `${Math.floor(h / 24)}d ${h % 24}h`;
}
