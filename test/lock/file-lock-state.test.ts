/** The stale decision of a lock file, without any file: pure inputs, pure verdict. */
import { describe, expect, it } from 'vitest';
import { describeFileLockHolder, formatDuration, judgeFileLock, parseFileLockContent, serializeFileLockContent, type FileLockContent } from '../../src/core/file-lock-state.js';

const NOW = Date.parse('2026-11-30T01:00:00.000Z');
const holder = (over: Partial<FileLockContent> = {}): FileLockContent => ({
  pid: 4242,
  hostname: 'host-a',
  run_id: 'run-1',
  acquired_at: '2026-11-30T00:50:00.000Z',
  heartbeat_at: '2026-11-30T00:59:50.000Z',
  ...over,
});
const base = { modifiedAtMs: NOW - 10_000, nowMs: NOW, localHostname: 'host-a', holderAlive: () => true, staleAfterMs: 60_000 };

describe('judgeFileLock', () => {
  it('keeps a live holder with a recent heartbeat', () => {
    expect(judgeFileLock({ ...base, content: holder() })).toEqual({ stale: false });
  });

  it('calls a lock stale when its process on this host is gone, however recent the heartbeat', () => {
    const v = judgeFileLock({ ...base, content: holder(), holderAlive: (pid) => pid !== 4242 });
    expect(v).toEqual({ stale: true, reason: 'process 4242 on host-a no longer exists' });
  });

  it('never asks about a pid of another host: only the heartbeat age counts there', () => {
    let asked = false;
    const v = judgeFileLock({ ...base, content: holder({ hostname: 'host-b' }), holderAlive: () => ((asked = true), false) });
    expect(v.stale).toBe(false);
    expect(asked).toBe(false);
  });

  it('calls a lock stale when its heartbeat is older than stale_after_ms, on any host', () => {
    const v = judgeFileLock({ ...base, content: holder({ hostname: 'host-b', heartbeat_at: '2026-11-30T00:58:00.000Z' }) });
    expect(v.stale).toBe(true);
    expect(v.stale && v.reason).toContain('last heartbeat 2m 0s ago');
  });

  it('treats a heartbeat exactly at the limit as live', () => {
    expect(judgeFileLock({ ...base, content: holder({ heartbeat_at: new Date(NOW - 60_000).toISOString() }) }).stale).toBe(false);
  });

  it('falls back to the mtime for an unparsable heartbeat_at', () => {
    expect(judgeFileLock({ ...base, content: holder({ heartbeat_at: 'soon' }) }).stale).toBe(false);
    expect(judgeFileLock({ ...base, content: holder({ heartbeat_at: 'soon' }), modifiedAtMs: NOW - 61_000 }).stale).toBe(true);
  });

  it('judges a heartbeat from a clock ahead of ours by the mtime: a dead holder is not live until its clock\'s time (found by probing)', () => {
    const ahead = holder({ hostname: 'host-b', heartbeat_at: '2030-01-01T00:00:00.000Z' });
    expect(judgeFileLock({ ...base, content: ahead }).stale).toBe(false);
    const v = judgeFileLock({ ...base, content: ahead, modifiedAtMs: NOW - 61_000 });
    expect(v.stale).toBe(true);
    expect(v.stale && v.reason).toContain('in the future');
    // A few seconds ahead is still a heartbeat (a live holder's clock slightly fast).
    expect(judgeFileLock({ ...base, content: holder({ hostname: 'host-b', heartbeat_at: new Date(NOW + 30_000).toISOString() }), modifiedAtMs: NOW - 61_000 }).stale).toBe(false);
    expect(describeFileLockHolder(ahead, NOW)).toContain('in the future');
  });

  it('gives an unreadable file (being written right now) time before calling it stale', () => {
    expect(judgeFileLock({ ...base, content: undefined, modifiedAtMs: NOW - 1_000 })).toEqual({ stale: false });
    expect(judgeFileLock({ ...base, content: undefined, modifiedAtMs: NOW - 120_000 }).stale).toBe(true);
  });
});

describe('lock file content', () => {
  it('round-trips and rejects what is not a lock file', () => {
    expect(parseFileLockContent(serializeFileLockContent(holder()))).toEqual(holder());
    expect(parseFileLockContent('')).toBeUndefined();
    expect(parseFileLockContent('{"pid":"1"}')).toBeUndefined();
    expect(parseFileLockContent('null')).toBeUndefined();
  });

  it('describes the holder with since when and the last heartbeat', () => {
    expect(describeFileLockHolder(holder(), NOW)).toBe(
      'pid 4242 on host-a (run run-1), holding since 2026-11-30T00:50:00.000Z (10m 0s ago), last heartbeat 2026-11-30T00:59:50.000Z (10s ago)',
    );
  });

  it('formats durations coarsely', () => {
    expect([0, 42_000, 185_000, 7_260_000, 3 * 86_400_000 + 4 * 3_600_000].map(formatDuration)).toEqual(['0s', '42s', '3m 5s', '2h 1m', '3d 4h']);
  });
});
