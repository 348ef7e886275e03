/**
 * Whether a message goes out now: pure, on an injected clock. Order of the rules: digest mode
 * collects (failures excepted), quiet hours hold back, the rate limit holds back a kind sent
 * recently; a failure with `critical_override` passes quiet hours and the rate limit.
 */
import type { NotificationKind, NotificationsConfig } from '../config/schema.js';

export type Decision = 'send' | 'digest' | 'quiet-hours' | 'rate-limited';

export type PolicySettings = Pick<NotificationsConfig, 'digest' | 'rate_limit_hours' | 'timezone' | 'quiet_hours' | 'critical_override'>;

export class NotificationPolicy {
  private readonly lastSent = new Map<NotificationKind, number>();

  constructor(private readonly settings: PolicySettings) {}

  /** Decides, and remembers a `send` for the rate limit. */
  decide(kind: NotificationKind, at: Date): Decision {
    const critical = kind === 'failure' && this.settings.critical_override;
    if (this.settings.digest && kind !== 'failure') return 'digest';
    if (!critical && this.settings.quiet_hours !== undefined && inWindow(minutesOfDay(at, this.settings.timezone), this.settings.quiet_hours)) return 'quiet-hours';
    const last = this.lastSent.get(kind);
    if (!critical && last !== undefined && this.settings.rate_limit_hours > 0 && at.getTime() - last < this.settings.rate_limit_hours * 3_600_000) return 'rate-limited';
    this.lastSent.set(kind, at.getTime());
    return 'send';
  }
}

/** Minutes since midnight of `at` on the wall clock of `timeZone`. */
export function minutesOfDay(at: Date, timeZone: string): number {
  const parts = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(at);
  const get = (type: string): number => Number(parts.find((p) => p.type === type)?.value ?? 0);
  return get('hour') * 60 + get('minute');
}

export function parseClockTime(hhmm: string): number {
  const [h, m] = hhmm.split(':').map(Number);
  return h! * 60 + m!;
}

/** [start, end) on the clock; a window past midnight (22:00 → 07:00) wraps. Equal ends: empty. */
export function inWindow(minutes: number, window: { start: string; end: string }): boolean {
  const start = parseClockTime(window.start);
  const end = parseClockTime(window.end);
  return start <= end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
}

/** The first instant strictly after `after` whose wall-clock time in `timeZone` is `hhmm` (minute precision). */
export function nextClockTime(after: Date, hhmm: string, timeZone: string): Date {
  const target = parseClockTime(hhmm);
  // Walk minute by minute from the next whole minute: at most 2 days (DST shifts included), pure and exact.
  let t = Math.floor(after.getTime() / 60_000) * 60_000 + 60_000;
  for (let i = 0; i < 2 * 24 * 60 + 120; i++, t += 60_000) {
    if (minutesOfDay(new Date(t), timeZone) === target) return new Date(t);
  }
  return new Date(t);
}
