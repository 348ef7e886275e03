import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { storageLogHooks } from '../../src/cli/storage-log-hooks.js';

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: pino({ level: 'info' }, stream) };
}

describe('storageLogHooks', () => {
  it('logs each circuit transition once, the opening as an error', () => {
    const { lines, logger } = capture();
    const hooks = storageLogHooks(logger);
    hooks.onCircuitChange!({ from: 'CLOSED', to: 'OPEN', failures: 5, at: 0 });
    hooks.onCircuitChange!({ from: 'OPEN', to: 'HALF_OPEN', failures: 5, at: 1 });
    hooks.onCircuitChange!({ from: 'HALF_OPEN', to: 'CLOSED', failures: 0, at: 2 });
    expect(lines.map((l) => [l.level, l.circuit, l.failures])).toEqual([
      [50, 'OPEN', 5],
      [30, 'HALF_OPEN', 5],
      [30, 'CLOSED', 0],
    ]);
    expect(String(lines[0]!.msg)).toContain('storage circuit opened');
  });

  it('warns when throttling cuts the rate, and says when it is restored', () => {
    const { lines, logger } = capture();
    const hooks = storageLogHooks(logger);
    hooks.onRateChange!({ previous: undefined, ratePerSecond: 61.234, reason: 'throttled' });
    hooks.onRateChange!({ previous: 120, ratePerSecond: undefined, reason: 'restored' });
    expect(lines.map((l) => [l.level, l.previous, l.requests_per_s])).toEqual([
      [40, 'unlimited', 61.2],
      [30, 120, 'unlimited'],
    ]);
  });
});
