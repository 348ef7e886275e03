import { describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { isUtcDay, parseUtcDay } from '../../src/core/utc-day.js';

describe('isUtcDay / parseUtcDay', () => {
  it.each(['2024-02-29', '2026-01-01', '2026-12-31', '0001-01-01', '0099-03-31', '9999-12-31'])('accepts %s', (day) => {
    expect(isUtcDay(day)).toBe(true);
    expect(parseUtcDay(day, '--from')).toBe(day);
  });

  it.each(['2026-13-01', '2026-00-10', '2026-01-00', '2026-01-32', '2026-02-29', '2026-02-30', '2026-04-31', '2026-1-1', '26-01-01', '2026-01-01T00:00:00Z', ' 2026-01-01', ''])(
    'refuses %j with a USAGE error (exit 2) naming the flag and the format, not a RangeError',
    (day) => {
      expect(isUtcDay(day)).toBe(false);
      let error: unknown;
      try {
        parseUtcDay(day, '--from');
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(AuditlogError);
      expect((error as AuditlogError).code).toBe('USAGE');
      expect((error as AuditlogError).exitCode).toBe(2);
      expect((error as AuditlogError).message).toBe(`--from expects a calendar day as YYYY-MM-DD (UTC), got "${day}"`);
    },
  );
});
