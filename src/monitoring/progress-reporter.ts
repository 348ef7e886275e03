/**
 * Progress of each table while it archives, from run events. On a terminal one live line (percent,
 * rows/s, ETA), redrawn on stderr, with a part per table running — tables of several databases run
 * at once with parallel_databases, and each drawing its own line over the same one made them
 * overwrite each other (found by probing) —, and each table's final figures kept on a line of
 * their own when it ends; otherwise a log line every interval, which cron
 * mail and log collectors can take. The estimate is pure and counts down the rows counted when the
 * table started (`table:counted`).
 */
import type { RunEvents, TableRef } from '../core/run-events.js';

export interface ProgressEstimate {
  done: number;
  total: number | undefined;
  /** 0–100, undefined until the total is known. */
  percent: number | undefined;
  rowsPerSecond: number;
  /** Seconds left at the current rate; undefined without a total or a rate yet. */
  etaSeconds: number | undefined;
}

export function estimateProgress(done: number, total: number | undefined, elapsedSeconds: number): ProgressEstimate {
  const rowsPerSecond = elapsedSeconds > 0 ? done / elapsedSeconds : 0;
  if (total === undefined) return { done, total, percent: undefined, rowsPerSecond, etaSeconds: undefined };
  // Rows inserted late with an old timestamp can push `done` past the count: never over 100 %.
  const left = Math.max(0, total - done);
  const percent = total === 0 ? 100 : Math.min(100, (done / total) * 100);
  return { done, total, percent, rowsPerSecond, etaSeconds: left === 0 ? 0 : rowsPerSecond > 0 ? left / rowsPerSecond : undefined };
}

/** `h:mm:ss` or `m:ss`; `--:--` when unknown. */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const pad = (n: number): string => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

export function formatProgressLine(label: string, e: ProgressEstimate): string {
  const n = (x: number): string => Math.round(x).toLocaleString('en-US');
  const percent = e.percent === undefined ? '' : `${e.percent.toFixed(1).padStart(5)}% `;
  const of = e.total === undefined ? `${n(e.done)} rows` : `${n(e.done)}/${n(e.total)} rows`;
  return `${label} ${percent}${of} ${n(e.rowsPerSecond)} rows/s ETA ${formatDuration(e.etaSeconds)}`;
}

export interface ProgressOptions {
  /** `tty`: redraw a live line with `write`; `log`: call `log` every `intervalMs`. */
  mode: 'tty' | 'log';
  write: (text: string) => void;
  log: (fields: Record<string, number | string | null>, message: string) => void;
  intervalMs: number;
  /** Epoch milliseconds. */
  now?: () => number;
  /**
   * The terminal's width, read at each redraw: the live line is cut to fit. A line that wraps is
   * two rows, and "erase line" clears only the last, so each redraw left a row behind (found in
   * review: two tables' parts are ~150 characters).
   */
  columns?: () => number | undefined;
}

interface Tracked {
  ref: TableRef;
  at: number;
  done: number;
  total: number | undefined;
}

/** Subscribes the reporter; returns the function that detaches it (and stops its timer). */
export function attachProgress(events: RunEvents, options: ProgressOptions): () => void {
  const now = options.now ?? Date.now;
  const tables = new Map<string, Tracked>();
  const id = (t: TableRef): string => JSON.stringify([t.runId, t.database, t.schema, t.table]);
  const label = (t: TableRef): string => `${t.database}/${t.schema}.${t.table}`;
  const estimate = (t: Tracked): ProgressEstimate => estimateProgress(t.done, t.total, (now() - t.at) / 1000);
  // \r and "erase line": the line is redrawn in place.
  const fit = (line: string): string => {
    const width = options.columns?.();
    return width === undefined || width < 2 || line.length < width ? line : `${line.slice(0, width - 2)}…`;
  };
  const draw = (): void => {
    if (tables.size === 0) return;
    options.write(`\r\x1b[2K${fit([...tables.values()].map((t) => formatProgressLine(label(t.ref), estimate(t))).join('  |  '))}`);
  };
  // A newline keeps a table's last figures once it ends; the others go on on the next line.
  const drawFinal = (t: Tracked): void => {
    options.write(`\r\x1b[2K${fit(formatProgressLine(label(t.ref), estimate(t)))}\n`);
    draw();
  };
  const logLine = (t: Tracked): void => {
    const e = estimate(t);
    options.log(
      {
        table: `${t.ref.schema}.${t.ref.table}`,
        database: t.ref.database,
        rows: e.done,
        total: e.total ?? null,
        percent: e.percent === undefined ? null : Math.round(e.percent * 10) / 10,
        rows_per_s: Math.round(e.rowsPerSecond),
        eta_s: e.etaSeconds === undefined ? null : Math.round(e.etaSeconds),
      },
      'progress',
    );
  };
  let timer: NodeJS.Timeout | undefined;
  if (options.mode === 'log') {
    timer = setInterval(() => tables.forEach(logLine), options.intervalMs);
    // Progress must never keep a finished process alive.
    timer.unref();
  }
  const offs = [
    events.on('table:started', (t) => {
      tables.set(id(t), { ref: t, at: now(), done: 0, total: undefined });
    }),
    events.on('table:counted', (t) => {
      const tracked = tables.get(id(t));
      if (tracked === undefined) return;
      tracked.total = t.rows;
      if (options.mode === 'tty') draw();
    }),
    events.on('batch:committed', (b) => {
      const tracked = tables.get(id(b));
      if (tracked === undefined) return;
      tracked.done += b.rows + b.rowsSkipped;
      if (options.mode === 'tty') draw();
    }),
    events.on('batch:skipped', (b) => {
      const tracked = tables.get(id(b));
      if (tracked === undefined) return;
      tracked.done += b.rowsSkipped;
      if (options.mode === 'tty') draw();
    }),
    events.on('table:finished', (t) => {
      const tracked = tables.get(id(t));
      if (tracked === undefined) return;
      tables.delete(id(t));
      if (options.mode === 'tty') drawFinal(tracked);
    }),
  ];
  return () => {
    clearInterval(timer);
    offs.forEach((off) => off());
  };
}
