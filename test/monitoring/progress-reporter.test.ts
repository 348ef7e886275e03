/** The progress estimate and reporter, on an injected clock: percent, rows/s and ETA must be right. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RunEvents } from '../../src/core/run-events.js';
import { attachProgress, estimateProgress, formatDuration, formatProgressLine } from '../../src/monitoring/progress-reporter.js';

const ref = { runId: 'r1', database: 'app', schema: 'public', table: 'events' };
const committed = (rows: number, rowsSkipped = 0) => ({ ...ref, key: `k${rows}`, rows, rowsSkipped, bytesUncompressed: 1, bytesCompressed: 1 });

afterEach(() => {
  vi.useRealTimers();
});

describe('estimateProgress', () => {
  it('counts down the counted rows at the rate so far', () => {
    expect(estimateProgress(250, 1000, 10)).toEqual({ done: 250, total: 1000, percent: 25, rowsPerSecond: 25, etaSeconds: 30 });
  });
  it('never passes 100 % when late rows push past the count, and has no ETA before any rate', () => {
    expect(estimateProgress(1200, 1000, 10)).toMatchObject({ percent: 100, etaSeconds: 0 });
    expect(estimateProgress(0, 1000, 0)).toMatchObject({ percent: 0, rowsPerSecond: 0, etaSeconds: undefined });
    expect(estimateProgress(10, undefined, 5)).toMatchObject({ percent: undefined, etaSeconds: undefined, rowsPerSecond: 2 });
    expect(estimateProgress(0, 0, 1)).toMatchObject({ percent: 100, etaSeconds: 0 });
  });
  it('formats durations as m:ss or h:mm:ss', () => {
    expect(formatDuration(65)).toBe('1:05');
    expect(formatDuration(3 * 3600 + 7)).toBe('3:00:07');
    expect(formatDuration(undefined)).toBe('--:--');
    expect(formatProgressLine('app/public.events', estimateProgress(2500, 10000, 5))).toBe('app/public.events  25.0% 2,500/10,000 rows 500 rows/s ETA 0:15');
  });
});

describe('attachProgress', () => {
  it('on a terminal redraws one line per table and ends it with a newline', () => {
    let now = 1_000_000;
    const out: string[] = [];
    const events = new RunEvents();
    attachProgress(events, { mode: 'tty', write: (t) => out.push(t), log: () => undefined, intervalMs: 5000, now: () => now });
    events.emit('table:started', { ...ref, cutoff: 'c', retentionDays: 10 });
    events.emit('table:counted', { ...ref, rows: 100 });
    now += 2000;
    events.emit('batch:committed', committed(40));
    expect(out.at(-1)).toBe('\r\x1b[2Kapp/public.events  40.0% 40/100 rows 20 rows/s ETA 0:03');
    // A batch whose rows were all skipped commits nothing, and its rows are done all the same.
    events.emit('batch:skipped', { ...ref, rowsSkipped: 10 });
    expect(out.at(-1)).toBe('\r\x1b[2Kapp/public.events  50.0% 50/100 rows 25 rows/s ETA 0:02');
    now += 3000;
    events.emit('batch:committed', committed(45, 5));
    events.emit('table:finished', { ...ref, summary: {} as never });
    expect(out.at(-1)).toBe('\r\x1b[2Kapp/public.events 100.0% 100/100 rows 20 rows/s ETA 0:00\n');
    expect(out.filter((t) => t.endsWith('\n'))).toHaveLength(1);
  });

  it('on a terminal, tables running at once (parallel_databases) share the live line instead of overwriting each other', () => {
    // Found by probing: each table redrew the whole line, so the other table's progress vanished.
    let now = 1_000_000;
    const out: string[] = [];
    const events = new RunEvents();
    attachProgress(events, { mode: 'tty', write: (t) => out.push(t), log: () => undefined, intervalMs: 5000, now: () => now });
    const other = { ...ref, database: 'billing' };
    events.emit('table:started', { ...ref, cutoff: 'c', retentionDays: 10 });
    events.emit('table:started', { ...other, cutoff: 'c', retentionDays: 10 });
    events.emit('table:counted', { ...ref, rows: 100 });
    events.emit('table:counted', { ...other, rows: 10 });
    now += 2000;
    events.emit('batch:committed', committed(40));
    expect(out.at(-1)).toBe('\r\x1b[2Kapp/public.events  40.0% 40/100 rows 20 rows/s ETA 0:03  |  billing/public.events   0.0% 0/10 rows 0 rows/s ETA --:--');
    events.emit('batch:committed', { ...committed(10), database: 'billing' });
    events.emit('table:finished', { ...other, summary: {} as never });
    // The finished table's last figures on a line of their own, then the one still running.
    expect(out.slice(-2)).toEqual(['\r\x1b[2Kbilling/public.events 100.0% 10/10 rows 5 rows/s ETA 0:00\n', '\r\x1b[2Kapp/public.events  40.0% 40/100 rows 20 rows/s ETA 0:03']);
    events.emit('table:finished', { ...ref, summary: {} as never });
    expect(out.at(-1)).toBe('\r\x1b[2Kapp/public.events  40.0% 40/100 rows 20 rows/s ETA 0:03\n');
  });

  it('on a terminal, the live line is cut to its width: a wrapped line leaves a row behind at each redraw', () => {
    const out: string[] = [];
    const events = new RunEvents();
    let columns: number | undefined = 80;
    attachProgress(events, { mode: 'tty', write: (t) => out.push(t), log: () => undefined, intervalMs: 5000, now: () => 1_000_000, columns: () => columns });
    events.emit('table:started', { ...ref, cutoff: 'c', retentionDays: 10 });
    events.emit('table:started', { ...ref, database: 'billing', cutoff: 'c', retentionDays: 10 });
    events.emit('table:counted', { ...ref, rows: 100 });
    const line = out.at(-1)!.slice('\r\x1b[2K'.length);
    expect(line).toHaveLength(79);
    expect(line.endsWith('…')).toBe(true);
    expect(line.startsWith('app/public.events   0.0% 0/100 rows 0 rows/s ETA --:--  |  billing/public.')).toBe(true);
    columns = 300;
    events.emit('table:counted', { ...ref, database: 'billing', rows: 10 });
    expect(out.at(-1)).toBe('\r\x1b[2Kapp/public.events   0.0% 0/100 rows 0 rows/s ETA --:--  |  billing/public.events   0.0% 0/10 rows 0 rows/s ETA --:--');
  });

  it('off a terminal logs a line every interval while a table runs, and stops when detached', () => {
    vi.useFakeTimers();
    let now = 0;
    const lines: Record<string, unknown>[] = [];
    const events = new RunEvents();
    const detach = attachProgress(events, { mode: 'log', write: () => undefined, log: (f) => lines.push(f), intervalMs: 5000, now: () => now });
    vi.advanceTimersByTime(5000);
    expect(lines).toHaveLength(0);
    events.emit('table:started', { ...ref, cutoff: 'c', retentionDays: 10 });
    events.emit('table:counted', { ...ref, rows: 1000 });
    now = 4000;
    events.emit('batch:committed', committed(200));
    now = 5000;
    vi.advanceTimersByTime(5000);
    expect(lines).toEqual([{ table: 'public.events', database: 'app', rows: 200, total: 1000, percent: 20, rows_per_s: 40, eta_s: 20 }]);
    events.emit('table:finished', { ...ref, summary: {} as never });
    vi.advanceTimersByTime(5000);
    expect(lines).toHaveLength(1);
    detach();
    events.emit('table:started', { ...ref, cutoff: 'c', retentionDays: 10 });
    vi.advanceTimersByTime(10_000);
    expect(lines).toHaveLength(1);
  });
});
