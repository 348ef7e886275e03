/**
 * SIGTERM while a command is still checking the storage at start-up, against storage that accepts
 * connections and never answers (a stalled proxy or endpoint): the check is given up at once and
 * the process ends well inside a grace period, having archived nothing. Found by probing: the
 * daemon and a one-shot archive both waited for the check's 5 attempts × request_timeout_ms
 * (about 5 minutes), the daemon without even logging the signal.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { startCli, type CliResult } from '../helpers/run-cli.js';
import { startSilentServer, type SilentServer } from '../helpers/silent-server.js';

let dir: string;
let db: TestDatabase;
let silent: SilentServer;
let silentPort: number;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stop-startup-'));
  db = await createTestDatabase();
  await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
  silent = await startSilentServer();
  silentPort = silent.port;
});
afterAll(async () => {
  await silent?.stop();
  await db?.drop();
  await rm(dir, { recursive: true, force: true });
});

async function writeConfig(name: string, extra = ''): Promise<string> {
  const file = join(dir, name);
  await writeFile(
    file,
    `s3:
  bucket: never-answers
  endpoint: http://127.0.0.1:${silentPort}
  region: us-east-1
  force_path_style: true
  access_key_id: test-key
  secret_access_key: test-secret
defaults:
  retention_days: 10
monitoring:
  metrics_port: 0
  health_check_port: 0
  listen_host: 127.0.0.1
${extra}
databases:
  - name: app
    url: ${db.url}
    tables:
      - name: events
        timestamp_column: happened_at
`,
  );
  return file;
}

/** Starts the command, waits until it is inside the storage check, sends SIGTERM; resolves with how long it took to end after it. */
async function stopDuringCheck(args: string[]): Promise<{ r: CliResult; afterSignalMs: number }> {
  const before = silent.held.length;
  const { child, result } = startCli(args, {}, 60_000);
  const until = Date.now() + 20_000;
  while (silent.held.length === before && Date.now() < until) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(silent.held.length, 'the command reached the storage check').toBeGreaterThan(before);
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const sent = performance.now();
  child.kill('SIGTERM');
  const r = await result;
  return { r, afterSignalMs: performance.now() - sent };
}

describe('SIGTERM during the start-up storage check', () => {
  it('the daemon logs the stop at once, ends within seconds with exit 0, and archives nothing', async () => {
    const { r, afterSignalMs } = await stopDuringCheck(['daemon', '--config', await writeConfig('daemon.yaml', 'daemon:\n  schedule: "* * * * * *"'), '--json']);
    expect(r.signal, r.stderr).toBeNull();
    expect(r.code, r.stderr).toBe(0);
    expect(afterSignalMs).toBeLessThan(5_000);
    const msgs = r.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(msgs.some((m) => m.startsWith('stop requested'))).toBe(true);
    expect(msgs).not.toContain('archive run started');
    expect(await rowIds(db)).toHaveLength(20);
  }, 90_000);

  for (const audit of ['storage', 'none'] as const) {
    // With the audit trail in storage the first check is the trail's; without it, the run's own.
    it(`a one-shot archive (audit trail: ${audit}) ends within seconds, STOPPED with exit 1, and archives nothing`, async () => {
      const file = await writeConfig(`archive-${audit}.yaml`, `compliance:\n  audit:\n    backend: ${audit}`);
      const { r, afterSignalMs } = await stopDuringCheck(['archive', '--config', file, '--json']);
      expect(r.signal, r.stderr).toBeNull();
      expect(r.code, r.stderr).toBe(1);
      expect(afterSignalMs).toBeLessThan(5_000);
      expect(r.stderr).toContain('stop requested');
      expect(r.stderr + r.stdout).toContain('stopped by SIGTERM');
      expect(r.stderr).not.toMatch(/Unhandled|at .*main\.js/);
      expect(await rowIds(db)).toHaveLength(20);
    }, 90_000);
  }
});
