/**
 * Notifications from the real CLI: a success message delivered to a webhook receiver with what
 * was archived, while failing channels (Slack answering 500, SMTP refused) change nothing in the
 * run — exit 0, every row archived — and are logged without the webhook token or the password.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { createEventsTable, rowIds } from '../helpers/events-table.js';
import { runCli } from '../helpers/run-cli.js';
import { startWebhookReceiver, type WebhookReceiver } from './receivers.js';

let dir: string;
let db: TestDatabase;
let hooks: WebhookReceiver;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'notify-'));
  db = await createTestDatabase();
  hooks = await startWebhookReceiver();
});
afterAll(async () => {
  await db?.drop();
  await hooks?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** A loopback port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A configuration archiving the test database's `events` to `archivePath`, with these top-level sections (YAML) between. */
async function writeEventsConfig(name: string, archivePath: string, sections: string): Promise<string> {
  const file = join(dir, name);
  const databases = `databases:\n  - name: app\n    url: ${db.url}\n    tables:\n      - name: events\n        timestamp_column: happened_at\n`;
  await writeFile(file, `local:\n  path: ${archivePath}\n${sections}${databases}`);
  return file;
}

describe('archive with notifications', () => {
  it('delivers the success message; failed channels are logged and counted, never fail the run', async () => {
    await createEventsTable(db, { rows: 20, stepMinutes: 60, endDaysAgo: 11 });
    hooks.statusFor.set('/services/T1/B2/tok-SLACK-123', 500);
    // As Express answers an unknown route: the path, token included, echoed in the error body.
    hooks.bodyFor.set('/services/T1/B2/tok-SLACK-123', (path) => `Cannot POST ${path}`);
    const config = await writeEventsConfig('notify.yaml', join(dir, 'archive'), `defaults:
  retention_days: 10
  batch_size: 5
notifications:
  events: [success, failure]
  timeout_ms: 3000
  slack:
    webhook_url: ${hooks.url('/services/T1/B2/tok-SLACK-123')}
  webhook:
    webhook_url: ${hooks.url('/generic')}
  email:
    host: 127.0.0.1
    port: ${await closedPort()}
    username: archiver
    password: \${SMTP_PASSWORD}
    from: archiver@example.com
    to: [ops@example.com]
`);
    const r = await runCli(['archive', '--config', config, '--json'], { SMTP_PASSWORD: 'mail-pw-987' });
    expect(r.code).toBe(0);
    expect(await rowIds(db)).toEqual([]);
    const generic = hooks.received.get('/generic') as Record<string, unknown>[];
    expect(generic).toHaveLength(1);
    expect(generic[0]).toMatchObject({ event: 'success', failed: 0, rows_archived: 20, tables: [{ database: 'app', table: 'public.events', status: 'archived', rows_archived: 20 }] });
    expect(hooks.received.get('/services/T1/B2/tok-SLACK-123')).toHaveLength(1);

    const warnings = r.stderr
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg: string; channel?: string; err?: string })
      .filter((l) => l.msg === 'notification not delivered; the run is not affected');
    expect(warnings.map((w) => w.channel).sort()).toEqual(['email', 'slack']);
    expect(warnings.find((w) => w.channel === 'slack')!.err).toBe('slack webhook answered HTTP 500: Cannot POST ****');
    expect(r.stdout + r.stderr).not.toContain('tok-SLACK-123');
    expect(r.stdout + r.stderr).not.toContain('mail-pw-987');

    const printed = await runCli(['config', 'validate', '--config', config, '--print'], { SMTP_PASSWORD: 'mail-pw-987' });
    expect(printed.code).toBe(0);
    expect(printed.stdout).not.toContain('tok-SLACK-123');
    expect(printed.stdout).not.toContain('mail-pw-987');
    expect(JSON.parse(printed.stdout.slice(0, printed.stdout.lastIndexOf('}') + 1)).notifications.slack.webhook_url).toBe('****');
  });

  it('a run whose audit trail cannot be opened (storage unusable) is notified as a failure, and archives nothing', async () => {
    // Found by probing: the trail was opened before any listener was attached, so a run that
    // failed there sent nothing at all, though the same outage without a trail sent start + failure.
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 5, stepMinutes: 60, endDaysAgo: 11 });
    const blocker = join(dir, 'afile');
    await writeFile(blocker, 'a regular file where a directory is expected');
    const config = await writeEventsConfig('no-trail.yaml', join(blocker, 'archive'), `defaults:
  retention_days: 10
notifications:
  events: [start, success, failure, threshold]
  timeout_ms: 3000
  webhook:
    webhook_url: ${hooks.url('/no-trail')}
`);
    const r = await runCli(['archive', '--config', config, '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[STORAGE_CONFLICT]');
    expect(await rowIds(db)).toHaveLength(5);
    const got = (hooks.received.get('/no-trail') ?? []) as Record<string, unknown>[];
    expect(got.map((m) => m.event)).toEqual(['start', 'failure']);
    expect(got[1]).toMatchObject({ error: { code: 'STORAGE_CONFLICT' } });
    // The fields of every other failure payload, for scripts that read them.
    expect(got[1]).toMatchObject({ failed: 1, rows_archived: 0, tables: [{ database: 'app', table: 'public.events', status: 'failed', rows_archived: 0, error: 'STORAGE_CONFLICT' }] });
    expect(String(got[1]!.text)).toContain('the run could not start: STORAGE_CONFLICT');
  });

  it('a webhook URL with user:password@ is refused at load (exit 2), naming each path, never the password', async () => {
    // Found by probing: it passed validation, then fetch refused every delivery ("includes credentials").
    const config = await writeEventsConfig('userinfo.yaml', join(dir, 'archive'), `notifications:
  slack:
    webhook_url: https://bot:sl4ckPass@hooks.slack.example/services/T1/B2/x
  teams:
    webhook_url: https://teams:te4msPass@teams.example/hook
  webhook:
    webhook_url: http://user:pa55word@127.0.0.1:8080/hook
`);
    for (const command of [['config', 'validate'], ['archive'], ['daemon']]) {
      const r = await runCli([...command, '--config', config]);
      expect(r.code).toBe(2);
      for (const channel of ['slack', 'teams', 'webhook']) {
        expect(r.stderr).toContain(`notifications.${channel}.webhook_url: contains a user name or password (user:password@), which a webhook request can never send: remove it`);
      }
      expect(r.stderr).toContain('[CONFIG_INVALID]');
      expect(r.stdout + r.stderr).not.toMatch(/sl4ckPass|te4msPass|pa55word/);
    }
  });

  it('digest: true on a one-shot archive sends the digest when the run ends, legal-hold notice included', async () => {
    // Found by probing: the messages were collected for a digest_time the process never lived to see.
    await db.query('DROP TABLE IF EXISTS events');
    await createEventsTable(db, { rows: 5, stepMinutes: 60, endDaysAgo: 11 });
    const config = await writeEventsConfig('digest.yaml', join(dir, 'digest-archive'), `defaults:
  retention_days: 10
legal_holds:
  enabled: true
  holds:
    - { table: events, reason: Case 2026-7 }
notifications:
  events: [start, success, failure, threshold]
  digest: true
  timeout_ms: 3000
  webhook:
    webhook_url: ${hooks.url('/digest')}
`);
    const r = await runCli(['archive', '--config', config, '--quiet']);
    expect(r.code).toBe(0);
    expect(await rowIds(db)).toHaveLength(5);
    const got = (hooks.received.get('/digest') ?? []) as { event: string; text: string; entries: { kind: string }[] }[];
    expect(got.map((m) => m.event)).toEqual(['digest']);
    expect(got[0]!.entries.map((e) => e.kind)).toEqual(['start', 'success', 'threshold']);
    expect(got[0]!.text).toContain('threshold exceeded');
  });
});
