/** Digest, rate limit and quiet hours decided on an injected clock (pure). */
import { describe, expect, it } from 'vitest';
import { inWindow, minutesOfDay, nextClockTime, NotificationPolicy, type PolicySettings } from '../../src/notifications/notification-policy.js';
import { renderMessage, renderTemplate } from '../../src/notifications/templates.js';

const base: PolicySettings = { digest: false, rate_limit_hours: 0, timezone: 'UTC', critical_override: true };
const at = (iso: string): Date => new Date(iso);

describe('NotificationPolicy', () => {
  it('rate limit: one message per kind per window; other kinds are independent', () => {
    const p = new NotificationPolicy({ ...base, rate_limit_hours: 6, critical_override: false });
    expect(p.decide('success', at('2026-03-01T00:00:00Z'))).toBe('send');
    expect(p.decide('success', at('2026-03-01T05:59:00Z'))).toBe('rate-limited');
    expect(p.decide('threshold', at('2026-03-01T05:59:00Z'))).toBe('send');
    expect(p.decide('success', at('2026-03-01T06:00:00Z'))).toBe('send');
    expect(p.decide('failure', at('2026-03-01T06:00:00Z'))).toBe('send');
    expect(p.decide('failure', at('2026-03-01T07:00:00Z'))).toBe('rate-limited');
  });

  it('quiet hours in the configured time zone, across midnight; failures pass with critical_override', () => {
    // 22:00–07:00 in Berlin (UTC+1 in winter): 21:30Z is 22:30 there.
    const p = new NotificationPolicy({ ...base, timezone: 'Europe/Berlin', quiet_hours: { start: '22:00', end: '07:00' } });
    expect(p.decide('success', at('2026-01-10T20:59:00Z'))).toBe('send');
    expect(p.decide('success', at('2026-01-10T21:30:00Z'))).toBe('quiet-hours');
    expect(p.decide('threshold', at('2026-01-11T05:59:00Z'))).toBe('quiet-hours');
    expect(p.decide('failure', at('2026-01-11T02:00:00Z'))).toBe('send');
    expect(p.decide('success', at('2026-01-11T06:00:00Z'))).toBe('send');
    const strict = new NotificationPolicy({ ...base, critical_override: false, timezone: 'Europe/Berlin', quiet_hours: { start: '22:00', end: '07:00' } });
    expect(strict.decide('failure', at('2026-01-11T02:00:00Z'))).toBe('quiet-hours');
  });

  it('digest mode collects everything but failures', () => {
    const p = new NotificationPolicy({ ...base, digest: true });
    expect(['start', 'success', 'threshold', 'failure'].map((k) => p.decide(k as 'start', at('2026-01-01T12:00:00Z')))).toEqual(['digest', 'digest', 'digest', 'send']);
  });

  it('clock helpers: minutes of day in a zone, windows, the next HH:MM', () => {
    expect(minutesOfDay(at('2026-07-01T12:34:00Z'), 'America/New_York')).toBe(8 * 60 + 34);
    expect(inWindow(9 * 60, { start: '08:00', end: '17:00' })).toBe(true);
    expect(inWindow(17 * 60, { start: '08:00', end: '17:00' })).toBe(false);
    expect(inWindow(23 * 60, { start: '22:00', end: '07:00' })).toBe(true);
    expect(inWindow(12 * 60, { start: '10:00', end: '10:00' })).toBe(false);
    expect(nextClockTime(at('2026-01-10T09:00:00Z'), '08:00', 'UTC').toISOString()).toBe('2026-01-11T08:00:00.000Z');
    expect(nextClockTime(at('2026-01-10T07:59:30Z'), '08:00', 'UTC').toISOString()).toBe('2026-01-10T08:00:00.000Z');
    expect(nextClockTime(at('2026-01-10T09:00:00Z'), '08:00', 'Asia/Tokyo').toISOString()).toBe('2026-01-10T23:00:00.000Z');
  });
});

describe('templates', () => {
  it('fill {{placeholders}}, keep unknown ones visible, and let a config override a default', () => {
    expect(renderTemplate('{{a}} and {{ b }} but {{nope}}', { a: 1, b: 'x' })).toBe('1 and x but {{nope}}');
    const own = renderMessage('failure', { failure: { subject: 'ALERT {{run_id}}' } }, { run_id: 'r9', failed: 2, duration: '1 s', host: 'h', details: '' });
    expect(own.subject).toBe('ALERT r9');
    expect(own.text).toContain('with 2 failed table(s)');
  });

  it('a placeholder named like a property every object inherits is unknown too, left as written', () => {
    // Found by probing: `name in values` found Object.prototype's members, so {{constructor}}
    // became "function Object() { [native code] }" instead of showing the typo.
    expect(renderTemplate('{{constructor}} {{__proto__}} {{run_id}}', { run_id: 'r1' })).toBe('{{constructor}} {{__proto__}} r1');
  });
});
