/**
 * The CLI's wiring of notifications (src/cli/notifications-setup.ts) with a real webhook receiver
 * and a real pino logger: what a held-back message leaves in the log, and what the daemon's
 * digest does when the process stops before digest_time.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import pino from 'pino';
import { Writable } from 'node:stream';
import { RunEvents } from '../../src/core/run-events.js';
import { createArchiveMetrics } from '../../src/monitoring/archive-metrics.js';
import { attachNotifications } from '../../src/cli/notifications-setup.js';
import type { RunSummary } from '../../src/archive/table-summary.js';
import { buildConfig } from '../helpers/archive-run.js';
import { startWebhookReceiver, type WebhookReceiver } from './receivers.js';

let hooks: WebhookReceiver;
beforeAll(async () => {
  hooks = await startWebhookReceiver();
});
afterAll(async () => {
  await hooks?.stop();
});
beforeEach(() => hooks.received.clear());

/** A logger at `level` whose lines are collected as parsed JSON. */
function capturingLogger(level: 'info' | 'warn'): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level }, sink), lines };
}

function configWith(notifications: Record<string, unknown>) {
  return buildConfig({
    local: { path: '/tmp/auditlog-notifications-setup-unused' },
    databases: [{ name: 'app', url: 'postgresql://postgres@127.0.0.1:1/app', tables: [{ name: 'events', timestamp_column: 'at' }] }],
    notifications: { webhook: { webhook_url: hooks.url('/generic') }, ...notifications },
  });
}

function failedRun(runId: string): RunSummary {
  return {
    runId,
    dryRun: false,
    failed: 1,
    held: 0,
    durationMs: 1_000,
    tables: [{ database: 'app', schema: 'public', table: 'events', status: 'failed', rowsArchived: 0, rowsSkipped: 0, batches: 0, bytesUncompressed: 0, bytesCompressed: 0, durationMs: 1, rowsPerSecond: 0, error: { code: 'DB_CONNECT', message: 'cannot connect to database "app" as archiver:s3cr3t-pw' } }],
  };
}

describe('attachNotifications', () => {
  it('a message held back is logged instead, with what it says; a failure or threshold as a warning, so --quiet keeps it', async () => {
    // Found by probing: the log line named only the event, and at info level --quiet dropped it.
    const { logger, lines } = capturingLogger('warn');
    const events = new RunEvents();
    // Quiet from an hour ago to an hour from now, and no override for failures: everything is held back.
    const clock = (offsetHours: number): string => new Date(Date.now() + offsetHours * 3_600_000).toISOString().slice(11, 16);
    const config = configWith({ events: ['start', 'success', 'failure', 'threshold'], quiet_hours: { start: clock(-1), end: clock(1) }, critical_override: false });
    const detach = attachNotifications({ config, events, metrics: createArchiveMetrics(), logger, secrets: ['s3cr3t-pw'], digest: 'daily' });
    events.emit('run:finished', { runId: 'run-1', command: 'archive', summary: failedRun('run-1') });
    await events.settle();
    await detach();
    expect(hooks.received.get('/generic')).toBeUndefined();
    expect(lines).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'notification held back',
        event: 'failure',
        reason: 'quiet-hours',
        subject: 'auditlog: archive run run-1 FAILED (1 table(s))',
        text: expect.stringContaining('- app/public.events: failed, 0 rows archived — DB_CONNECT: cannot connect to database "app" as archiver:****'),
      }),
    ]);
    // Redacted like a message sent.
    expect(JSON.stringify(lines)).not.toContain('s3cr3t-pw');
  });

  it('the daemon stopping before digest_time sends what the digest collected, not nothing', async () => {
    // Found by probing: a daemon redeployed every day before digest_time never sent a digest.
    const { logger } = capturingLogger('warn');
    const events = new RunEvents();
    // digest_time twelve hours away: not due during the test, whenever it runs.
    const digestTime = new Date(Date.now() + 12 * 3_600_000).toISOString().slice(11, 16);
    const config = configWith({ events: ['start', 'success', 'failure', 'threshold'], digest: true, digest_time: digestTime });
    const detach = attachNotifications({ config, events, metrics: createArchiveMetrics(), logger, secrets: ['s3cr3t-pw'], digest: 'daily' });
    events.emit('run:started', { runId: 'run-1', command: 'archive', dryRun: false, at: new Date().toISOString() });
    // A success (collected) whose table line carries a secret: the payload's entries are redacted too.
    const succeeded = failedRun('run-1');
    events.emit('run:finished', { runId: 'run-1', command: 'archive', summary: { ...succeeded, failed: 0, tables: [{ ...succeeded.tables[0]!, status: 'archived', rowsArchived: 5 }] } });
    await events.settle();
    expect(hooks.received.get('/generic')).toBeUndefined();
    await detach();
    const sent = hooks.received.get('/generic') as { event: string; subject: string; entries: { kind: string; subject: string; text: string }[] }[];
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      event: 'digest',
      subject: 'auditlog: daily digest (2 event(s))',
      entries: [
        { kind: 'start', subject: 'auditlog: archive run run-1 started' },
        { kind: 'success', subject: 'auditlog: archive run run-1 succeeded', text: expect.stringContaining('as archiver:****') },
      ],
    });
    expect(JSON.stringify(sent)).not.toContain('s3cr3t-pw');
  });
});
