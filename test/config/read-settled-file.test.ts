import { mkdtemp, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readSettledFile } from '../../src/config/read-settled-file.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'settled-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('readSettledFile', () => {
  it('does not read a file halfway through a write: it waits until the file has not changed for settleMs', async () => {
    const file = join(dir, 'half.yaml');
    // An in-place writer caught after its first chunk: still valid YAML, with another meaning.
    await writeFile(file, 'retention_days: 3');
    const reading = readSettledFile(file, { settleMs: 600, maxWaitMs: 10_000 });
    await sleep(250);
    await writeFile(file, 'retention_days: 365\n');
    expect(String(await reading)).toBe('retention_days: 365\n');
  });

  it('reads a file unchanged for longer than settleMs at once', async () => {
    const file = join(dir, 'old.yaml');
    await writeFile(file, 'a: 1\n');
    const past = new Date(Date.now() - 60_000);
    await utimes(file, past, past);
    const started = Date.now();
    expect(String(await readSettledFile(file, { settleMs: 5_000, maxWaitMs: 10_000 }))).toBe('a: 1\n');
    expect(Date.now() - started).toBeLessThan(1_000);
  });

  it('reads a file that keeps changing as it is once maxWaitMs has passed', async () => {
    const file = join(dir, 'busy.yaml');
    await writeFile(file, 'n: 0\n');
    let n = 0;
    // Each version renamed into place: a plain writeFile truncates first, and a read in that
    // instant saw "" (a flake of the test's writer, not of the reader; found by CI).
    const writer = setInterval(() => {
      const version = `${file}.${++n}`;
      void writeFile(version, `n: ${n}\n`).then(() => rename(version, file)).catch(() => undefined);
    }, 50);
    try {
      const started = Date.now();
      const text = String(await readSettledFile(file, { settleMs: 1_000, maxWaitMs: 600 }));
      expect(Date.now() - started).toBeLessThan(2_000);
      expect(text).toMatch(/^n: \d+\n$/);
    } finally {
      clearInterval(writer);
    }
  });
});
