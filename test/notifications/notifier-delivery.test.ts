/**
 * Messages delivered for real: email to an SMTP server on loopback (smtp-server, with AUTH) and
 * Slack/Teams/generic JSON to local HTTP receivers. Digest, rate limit and quiet hours run on an
 * injected clock; a channel that fails is reported and never stops the others.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { notificationsSchema, type NotificationsConfig } from '../../src/config/schema.js';
import { RunEvents } from '../../src/core/run-events.js';
import type { RunSummary } from '../../src/archive/table-summary.js';
import { createChannels } from '../../src/notifications/channels.js';
import { DIGEST_DETAILS_CHARS, Notifier } from '../../src/notifications/notifier.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startSmtpReceiver, startWebhookReceiver, type WebhookReceiver } from './receivers.js';

let smtp: Awaited<ReturnType<typeof startSmtpReceiver>>;
let hooks: WebhookReceiver;
beforeAll(async () => {
  smtp = await startSmtpReceiver({ user: 'archiver', pass: 'smtp-s3cret' });
  hooks = await startWebhookReceiver();
});
afterAll(async () => {
  await smtp?.stop();
  await hooks?.stop();
});
beforeEach(() => {
  smtp.mails.length = 0;
  hooks.received.clear();
  hooks.statusFor.clear();
  hooks.bodyFor.clear();
});

function settings(extra: Record<string, unknown> = {}): NotificationsConfig {
  return notificationsSchema.parse({
    events: ['start', 'success', 'failure', 'threshold'],
    email: { host: '127.0.0.1', port: smtp.port, username: 'archiver', password: 'smtp-s3cret', from: 'archiver@example.com', to: ['ops@example.com', 'dba@example.com'] },
    slack: { webhook_url: hooks.url('/slack/T000/B000/XXXX') },
    teams: { webhook_url: hooks.url('/teams') },
    webhook: { webhook_url: hooks.url('/generic') },
    timeout_ms: 5000,
    ...extra,
  });
}

function summary(over: Partial<RunSummary> = {}, table: Partial<RunSummary['tables'][number]> = {}): RunSummary {
  return {
    runId: 'run-1',
    dryRun: false,
    failed: 0,
    held: 0,
    durationMs: 4_000,
    tables: [
      { database: 'app', schema: 'public', table: 'events', status: 'archived', rowsArchived: 120, rowsSkipped: 3, batches: 2, bytesUncompressed: 1, bytesCompressed: 1, durationMs: 4_000, rowsPerSecond: 30, ...table },
    ],
    ...over,
  };
}

function setup(config: NotificationsConfig, start = '2026-01-10T12:00:00Z') {
  let now = new Date(start);
  const failures: { channel: string; kind: string; error: string }[] = [];
  const held: string[] = [];
  const heldMessages: { subject: string; text: string }[] = [];
  const events = new RunEvents();
  const notifier = new Notifier({
    config,
    channels: createChannels(config),
    host: 'test-host',
    now: () => now,
    onFailure: (channel, kind, error) => failures.push({ channel, kind, error: String(error) }),
    onHeld: (kind, decision, message) => {
      held.push(`${kind}:${decision}`);
      heldMessages.push(message);
    },
  });
  notifier.subscribe(events);
  const finish = async (s: RunSummary): Promise<void> => {
    events.emit('run:finished', { runId: s.runId, command: 'archive', summary: s });
    await events.settle();
  };
  return { events, notifier, failures, held, heldMessages, finish, advance: (ms: number) => (now = new Date(now.getTime() + ms)) };
}

/** The text body of a quoted-printable mail as the recipient reads it. */
function mailBody(raw: string): string {
  const body = raw.slice(raw.indexOf('\r\n\r\n') + 4).replace(/=\r?\n/g, '');
  const bytes = body.replace(/=([0-9A-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, 'latin1').toString('utf8');
}

const slackTexts = (): string[] => ((hooks.received.get('/slack/T000/B000/XXXX') ?? []) as { text: string }[]).map((b) => b.text);

describe('delivery', () => {
  it('a failure reaches every channel: SMTP with AUTH to all recipients, Slack text, Teams card, generic JSON with the tables', async () => {
    const { finish, failures } = setup(settings());
    await finish(summary({ failed: 1 }, { status: 'failed', rowsArchived: 0, error: { code: 'DB_CONNECT', message: 'cannot connect to database "app"' } }));
    expect(failures).toEqual([]);
    expect(smtp.mails).toHaveLength(1);
    const mail = smtp.mails[0]!;
    expect(mail).toMatchObject({ from: 'archiver@example.com', to: ['ops@example.com', 'dba@example.com'], user: 'archiver' });
    expect(mail.raw).toMatch(/^Subject: auditlog: archive run run-1 FAILED \(1 table\(s\)\)/m);
    expect(mailBody(mail.raw)).toContain('- app/public.events: failed, 0 rows archived — DB_CONNECT: cannot connect to database "app"');
    expect(slackTexts()[0]).toMatch(/^\*auditlog: archive run run-1 FAILED \(1 table\(s\)\)\*\n/);
    const card = hooks.received.get('/teams')![0] as Record<string, string>;
    expect(card).toMatchObject({ '@type': 'MessageCard', title: 'auditlog: archive run run-1 FAILED (1 table(s))', themeColor: 'D70000' });
    const generic = hooks.received.get('/generic')![0] as Record<string, unknown>;
    expect(generic).toMatchObject({ event: 'failure', run_id: 'run-1', failed: 1, tables: [{ database: 'app', table: 'public.events', status: 'failed', rows_archived: 0, error: 'DB_CONNECT' }] });
  });

  it('a run of many tables gives a failure message a chat webhook accepts: failed tables first, the rest counted (found by probing)', async () => {
    const { finish, failures } = setup(settings());
    const base = summary().tables[0]!;
    const tables: RunSummary['tables'] = Array.from({ length: 600 }, (_, i) =>
      i % 3 === 2
        ? { ...base, table: `events_${i}`, status: 'failed', rowsArchived: 0, error: { code: 'DB_CONNECT', message: `cannot connect to database "app": ${'x'.repeat(80)}` } }
        : { ...base, table: `events_${i}` },
    );
    await finish(summary({ failed: 200, tables }));
    expect(failures).toEqual([]);
    const text = slackTexts()[0]!;
    expect(text.length).toBeLessThan(DIGEST_DETAILS_CHARS + 2_000);
    const listed = text.split('\n').filter((l) => l.startsWith('- app/'));
    // The failed tables come first; every one of them that fits is there, before any archived one.
    expect(listed[0]).toContain('app/public.events_2: failed');
    expect(listed.every((l) => l.includes(': failed,'))).toBe(true);
    const more = /- and (\d+) more table\(s\) \((\d+) of them failed\), left out to keep the message deliverable/.exec(text);
    expect(more).not.toBeNull();
    expect(Number(more![1]) + listed.length).toBe(600);
    expect(Number(more![2]) + listed.length).toBe(200);
    expect(((hooks.received.get('/teams')![0] as Record<string, string>).text ?? '').length).toBeLessThan(DIGEST_DETAILS_CHARS + 4_000);
    // The generic JSON payload still carries every table.
    expect((hooks.received.get('/generic')![0] as { tables: unknown[] }).tables).toHaveLength(600);
  });

  it('a channel that fails (HTTP 500, SMTP refused) is reported; the others still get the message and nothing throws', async () => {
    hooks.statusFor.set('/teams', 500);
    const config = settings({ email: { host: '127.0.0.1', port: smtp.port, username: 'archiver', password: 'wrong', from: 'a@example.com', to: ['ops@example.com'] } });
    const { finish, failures } = setup(config);
    await finish(summary());
    expect(failures.map((f) => f.channel).sort()).toEqual(['email', 'teams']);
    expect(failures.find((f) => f.channel === 'teams')!.error).toContain('teams webhook answered HTTP 500: invalid_token');
    expect(failures.find((f) => f.channel === 'teams')!.error).not.toContain('127.0.0.1');
    expect(slackTexts()).toHaveLength(1);
    expect(hooks.received.get('/generic')).toHaveLength(1);
    expect(smtp.mails).toHaveLength(0);
  });

  it('a server echoing the webhook path or token in its error body: the error keeps the status and the body, never a part of the URL', async () => {
    const generic = '/hook/T0KEN123?fail=1';
    const slack = '/services/T0AAA/B0BBB/RealT0kenXYZ';
    hooks.statusFor.set(generic, 500).set(slack, 404).set('/teams/abc', 403);
    // Express's page, a partial echo (one segment), and a body longer than what is kept, the path at its cut.
    hooks.bodyFor.set(slack, (path) => `Cannot POST ${path}`).set(generic, (path) => `bad token ${path}`).set('/teams/abc', (path) => `${'x'.repeat(190)} ${decodeURIComponent(path)}`);
    const config = settings({ email: undefined, slack: { webhook_url: hooks.url(slack) }, webhook: { webhook_url: hooks.url(generic) }, teams: { webhook_url: hooks.url('/teams/abc') } });
    const { finish, failures } = setup(config);
    await finish(summary());
    const errors = Object.fromEntries(failures.map((f) => [f.channel, f.error]));
    expect(errors).toEqual({
      webhook: 'Error: webhook answered HTTP 500: bad token ****',
      slack: 'Error: slack webhook answered HTTP 404: Cannot POST ****',
      teams: `Error: teams webhook answered HTTP 403: ${'x'.repeat(190)} ****`,
    });
    expect(JSON.stringify(failures)).not.toMatch(/T0KEN|fail=1|RealT0ken|T0AAA|\/teams\/abc|127\.0\.0\.1/);
  });

  it('a receiver answering with an endless body: only its start is read, the delivery fails at once naming the status', async () => {
    // Found by probing: the whole body was read, 1 MiB chunk after chunk until timeout_ms (1.2 GB of RSS).
    let written = 0;
    let closed!: () => void;
    const connectionClosed = new Promise<void>((resolve) => (closed = resolve));
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(500, { 'content-type': 'text/plain' });
        const chunk = Buffer.alloc(1 << 20, 'x');
        const pump = (): void => {
          while (!res.destroyed && res.write(chunk)) written += chunk.length;
          if (!res.destroyed) res.once('drain', pump);
        };
        res.on('close', closed);
        pump();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/endless`;
      const { events, failures } = setup(settings({ email: undefined, slack: undefined, teams: undefined, webhook: { webhook_url: url }, timeout_ms: 10_000 }));
      const started = Date.now();
      events.emit('run:failed', { runId: 'run-9', command: 'archive', error: { code: 'STORAGE_UNREACHABLE', message: 'down' } });
      await events.settle();
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(failures).toEqual([{ channel: 'webhook', kind: 'failure', error: `Error: webhook answered HTTP 500: ${'x'.repeat(200)}` }]);
      await connectionClosed;
      expect(written).toBeLessThan(64 << 20);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a receiver that sends its status and then stalls: a 2xx is delivered at once, an error names its status and the timeout', async () => {
    // Found by probing: the abort while reading the body escaped as "The operation was aborted due
    // to timeout", with no channel and no status, and a 200 turned into a failed delivery.
    const server = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(req.url === '/ok' ? 200 : 500, { 'content-type': 'text/plain' });
        res.write('partial answer ');
        // …and nothing more: the connection stays open.
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const { events, failures } = setup(settings({ email: undefined, teams: undefined, slack: { webhook_url: `${base}/ok` }, webhook: { webhook_url: `${base}/error` }, timeout_ms: 1_500 }));
      const started = Date.now();
      events.emit('run:failed', { runId: 'run-9', command: 'archive', error: { code: 'STORAGE_UNREACHABLE', message: 'down' } });
      await events.settle();
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(failures).toEqual([{ channel: 'webhook', kind: 'failure', error: 'Error: webhook answered HTTP 500, then did not finish its answer within 1500 ms (notifications.timeout_ms)' }]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a webhook that redirects is not delivered: the redirect is a failure naming its status and target, never a part of the URL', async () => {
    // Found by probing: a POST redirected with 301/302/303 was resent as a GET without the
    // message; the 200 of that GET counted as delivered and the message was lost without a word.
    const gets: string[] = [];
    const server = createServer((req, res) => {
      if (req.method === 'GET') {
        gets.push(req.url!);
        res.end('<html>landing page</html>');
      } else if (req.url!.startsWith('/moved/')) res.writeHead(301, { location: `https://hooks.example.com${req.url!}` }).end();
      else res.writeHead(302, { location: '/landing' }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const cases: [string, string][] = [
        [`http://127.0.0.1:${port}/hook/T0KEN-9f8e7d?key=QS3CRET-1`, `webhook answered HTTP 302, a redirect to http://127.0.0.1:${port}`],
        [`http://127.0.0.1:${port}/moved/T0KEN-9f8e7d?key=QS3CRET-1`, 'webhook answered HTTP 301, a redirect to https://hooks.example.com'],
      ];
      for (const [url, expected] of cases) {
        const { events, failures } = setup(settings({ email: undefined, slack: undefined, teams: undefined, webhook: { webhook_url: url } }));
        events.emit('run:failed', { runId: 'run-6', command: 'archive', error: { code: 'STORAGE_UNREACHABLE', message: 'down' } });
        await events.settle();
        expect(failures).toEqual([
          { channel: 'webhook', kind: 'failure', error: `Error: ${expected}, which is not followed (the message would be resent without its body, or to another server): set its webhook_url to the address it redirects to` },
        ]);
        expect(failures[0]!.error).not.toMatch(/T0KEN|QS3CRET/);
      }
      expect(gets).toEqual([]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a webhook that cannot be reached says why (refused, connection closed), never a part of its URL', async () => {
    // Found by probing: every such failure said only "fetch failed".
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const closedPort = (probe.address() as AddressInfo).port;
    await new Promise((resolve) => probe.close(resolve));
    const server = createServer((req, res) => {
      req.socket.destroy();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const token = 'T0KEN-9f8e7d?key=QS3CRET-1';
    try {
      const cases: [string, string][] = [
        [`http://127.0.0.1:${closedPort}/hook/${token}`, `webhook could not be reached: fetch failed: connect ECONNREFUSED 127.0.0.1:${closedPort}`],
        [`http://127.0.0.1:${port}/hang-up/${token}`, 'webhook could not be reached: fetch failed: other side closed (UND_ERR_SOCKET)'],
      ];
      for (const [url, expected] of cases) {
        const { events, failures } = setup(settings({ email: undefined, slack: undefined, teams: undefined, webhook: { webhook_url: url } }));
        events.emit('run:failed', { runId: 'run-5', command: 'archive', error: { code: 'STORAGE_UNREACHABLE', message: 'down' } });
        await events.settle();
        expect(failures).toEqual([{ channel: 'webhook', kind: 'failure', error: `Error: ${expected}` }]);
        expect(failures[0]!.error).not.toMatch(/T0KEN|QS3CRET/);
      }
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a partial echo of a token segment alone is redacted too', async () => {
    hooks.statusFor.set('/hook/T0KEN123', 401);
    hooks.bodyFor.set('/hook/T0KEN123', () => 'unknown token T0KEN123');
    const { finish, failures } = setup(settings({ email: undefined, slack: undefined, teams: undefined, webhook: { webhook_url: hooks.url('/hook/T0KEN123') } }));
    await finish(summary());
    expect(failures.map((f) => f.error)).toEqual(['Error: webhook answered HTTP 401: unknown token ****']);
  });

  it('a run that could not start at all (run:failed) is a failure message naming the error', async () => {
    const { events, failures } = setup(settings({ email: undefined, teams: undefined, webhook: undefined }));
    events.emit('run:failed', { runId: 'run-7', command: 'archive', error: { code: 'STORAGE_UNREACHABLE', message: 'cannot reach s3://audit-archive/' } });
    await events.settle();
    expect(failures).toEqual([]);
    expect(slackTexts()).toHaveLength(1);
    expect(slackTexts()[0]).toContain('archive run run-7 FAILED (all table(s))');
    expect(slackTexts()[0]).toContain('- the run could not start: STORAGE_UNREACHABLE: cannot reach s3://audit-archive/');
  });

  it('events not listed send nothing; thresholds send one message listing each violation', async () => {
    const config = settings({ events: ['threshold'], email: undefined, teams: undefined, webhook: undefined, thresholds: { max_run_minutes: 1, max_rows_skipped: 2 } });
    const { finish, events } = setup(config);
    events.emit('run:started', { runId: 'run-1', command: 'archive', dryRun: false, at: '2026-01-10T12:00:00Z' });
    await finish(summary({ durationMs: 90_000 }));
    expect(slackTexts()).toHaveLength(1);
    expect(slackTexts()[0]).toContain('threshold exceeded in run run-1');
    expect(slackTexts()[0]).toContain('- run took 1.5 min, over max_run_minutes 1');
    expect(slackTexts()[0]).toContain('- 3 rows skipped (changed or locked while archived), over max_rows_skipped 2');
  });

  it('a table held by a legal hold is reported with the thresholds (sent by default), naming the hold', async () => {
    const config = settings({ events: ['threshold'], email: undefined, teams: undefined, webhook: undefined });
    const { finish } = setup(config);
    await finish(summary({ held: 1 }, { status: 'held', rowsArchived: 0, rowsSkipped: 0, batches: 0, holds: { tableLevel: ['Case 2026-114 (set by legal@example.com)'], recordLevel: [], expired: [] } }));
    expect(slackTexts()).toHaveLength(1);
    expect(slackTexts()[0]).toContain('- app/public.events not archived: held by a legal hold (Case 2026-114 (set by legal@example.com))');
  });

  it('nothing archived for D days: a threshold message once the table has gone that long without a row', async () => {
    const config = settings({ events: ['threshold'], email: undefined, teams: undefined, webhook: undefined, thresholds: { max_days_without_archive: 2 } });
    const { finish, events, advance } = setup(config);
    const ref = { runId: 'r', database: 'app', schema: 'public', table: 'events' };
    const run = async (rows: number): Promise<void> => {
      events.emit('table:started', { ...ref, cutoff: 'c', retentionDays: 1 });
      const s = summary({}, { rowsArchived: rows, rowsSkipped: 0 });
      events.emit('table:finished', { ...ref, summary: s.tables[0]! });
      await finish(s);
    };
    await run(5);
    advance(86_400_000);
    await run(0);
    expect(slackTexts()).toHaveLength(0);
    advance(1.5 * 86_400_000);
    await run(0);
    expect(slackTexts()).toHaveLength(1);
    expect(slackTexts()[0]).toContain('app/public.events: nothing archived for 2.5 days, over max_days_without_archive 2');
  });

  it('nothing archived for D days fires on runs that could not start too: a daemon whose runs all fail is when it matters', async () => {
    // Found by probing: the limit was checked only on a finished run, so a daemon refusing every
    // run (its file no longer loads) or with the storage down never reported it.
    const config = settings({ events: ['threshold'], email: undefined, teams: undefined, webhook: undefined, thresholds: { max_days_without_archive: 2 } });
    const { events, advance } = setup(config);
    const tables = [{ database: 'app', schema: 'public', table: 'events' }];
    const cannotStart = async (runId: string): Promise<void> => {
      events.emit('run:started', { runId, command: 'archive', dryRun: false, at: '2026-01-10T12:00:00Z', tables });
      events.emit('run:failed', { runId, command: 'archive', error: { code: 'CONFIG_PARSE', message: 'the configuration file no longer loads' } });
      await events.settle();
    };
    // The first failed run is the baseline: no run of this process ever reached the table.
    await cannotStart('run-1');
    advance(1.5 * 86_400_000);
    await cannotStart('run-2');
    expect(slackTexts()).toHaveLength(0);
    advance(86_400_000);
    await cannotStart('run-3');
    expect(slackTexts()).toHaveLength(1);
    expect(slackTexts()[0]).toContain('threshold exceeded in run run-3');
    expect(slackTexts()[0]).toContain('app/public.events: nothing archived for 2.5 days, over max_days_without_archive 2');
  });
});

describe('what a run is reported as', () => {
  it('nothing archived for D days fires for a table that fails before it starts (database down, lock held elsewhere)', async () => {
    // Found by probing: the baseline was set when a table started, which such a table never did,
    // so a database down for days never tripped the limit.
    const config = settings({ events: ['threshold'], email: undefined, teams: undefined, webhook: undefined, thresholds: { max_days_without_archive: 2 } });
    const { events, finish, advance } = setup(config);
    const tables = [{ database: 'app', schema: 'public', table: 'events' }];
    const failing = async (runId: string): Promise<void> => {
      events.emit('run:started', { runId, command: 'archive', dryRun: false, at: '2026-01-10T12:00:00Z', tables });
      await finish(summary({ runId, failed: 1 }, { status: 'failed', rowsArchived: 0, rowsSkipped: 0, error: { code: 'DB_CONNECT', message: 'cannot connect' } }));
    };
    await failing('run-1');
    advance(1.5 * 86_400_000);
    await failing('run-2');
    expect(slackTexts()).toHaveLength(0);
    advance(86_400_000);
    await failing('run-3');
    expect(slackTexts()).toEqual([expect.stringContaining('app/public.events: nothing archived for 2.5 days, over max_days_without_archive 2')]);
  });

  it('a dry run sends nothing: no start, no "succeeded", no threshold', async () => {
    // Found by probing: `archive --dry-run` sent "archive run … succeeded" and threshold messages like a real run.
    const { events, finish, advance } = setup(settings({ email: undefined, teams: undefined, webhook: undefined, thresholds: { max_days_without_archive: 1, max_rows_skipped: 0 } }));
    const tables = [{ database: 'app', schema: 'public', table: 'events' }];
    events.emit('run:started', { runId: 'dry-1', command: 'archive', dryRun: true, at: '2026-01-10T12:00:00Z', tables });
    events.emit('table:started', { runId: 'dry-1', ...tables[0]!, cutoff: 'c', retentionDays: 1 });
    advance(3 * 86_400_000);
    await finish(summary({ runId: 'dry-1', dryRun: true }, { status: 'dry-run', rowsArchived: 0, rowsSkipped: 5 }));
    events.emit('run:started', { runId: 'dry-2', command: 'archive', dryRun: true, at: '2026-01-13T12:00:00Z', tables });
    events.emit('run:failed', { runId: 'dry-2', command: 'archive', error: { code: 'STORAGE_UNREACHABLE', message: 'down' } });
    await events.settle();
    expect(slackTexts()).toEqual([]);
    // Nor did the dry run start the table's "nothing archived" count: a real run starts it now.
    events.emit('run:started', { runId: 'run-1', command: 'archive', dryRun: false, at: '2026-01-13T12:00:00Z', tables });
    await finish(summary({ runId: 'run-1' }, { rowsArchived: 0, rowsSkipped: 0 }));
    expect(slackTexts()).toHaveLength(2);
    expect(slackTexts().join('\n')).not.toContain('nothing archived for');
  });

  it('a run a stop cut short is not "succeeded": its subject and its tables say it stopped before the end', async () => {
    // Found by probing: a daemon stopped mid-run (its tables end as archived, marked stopped) sent "succeeded".
    const { finish } = setup(settings({ email: undefined, teams: undefined, webhook: undefined }));
    await finish(summary({ stopped: { code: 'STOPPED', message: 'stopped by SIGTERM' } }, { stopped: true }));
    await finish(summary({ runId: 'run-2' }));
    expect(slackTexts()[0]).toMatch(/^\*auditlog: archive run run-1 stopped before the end\*\n/);
    expect(slackTexts()[0]).toContain('- app/public.events: archived (stopped before the end), 120 rows archived');
    expect(slackTexts()[1]).toMatch(/^\*auditlog: archive run run-2 succeeded\*\n/);
    expect(slackTexts()[1]).toContain('- app/public.events: archived, 120 rows archived');
  });

  it('{{outcome}} is "failed" in a failure, and the generic webhook carries it for every run message', async () => {
    const { finish } = setup(settings({ email: undefined, teams: undefined, templates: { failure: { subject: 'run {{run_id}} {{outcome}}' } } }));
    await finish(summary({ failed: 1 }, { status: 'failed', error: { code: 'DB_CONNECT', message: 'down' } }));
    await finish(summary({ runId: 'run-2', stopped: { code: 'STOPPED', message: 'stopped by SIGTERM' } }, { stopped: true }));
    expect(slackTexts()[0]).toMatch(/^\*run run-1 failed\*/);
    expect((hooks.received.get('/generic') as { outcome: string }[]).map((b) => b.outcome)).toEqual(['failed', 'stopped before the end']);
  });
});

describe('policy on an injected clock', () => {
  it('rate limit: a second success within rate_limit_hours is held back, the next after it is sent', async () => {
    const { finish, advance, held } = setup(settings({ email: undefined, teams: undefined, webhook: undefined, rate_limit_hours: 1 }));
    await finish(summary());
    advance(30 * 60_000);
    await finish(summary({ runId: 'run-2' }));
    advance(31 * 60_000);
    await finish(summary({ runId: 'run-3' }));
    expect(slackTexts().map((t) => /run (run-\d)/.exec(t)?.[1])).toEqual(['run-1', 'run-3']);
    expect(held).toEqual(['success:rate-limited']);
  });

  it('quiet hours: success held, failure sent anyway (critical_override)', async () => {
    const { finish, held, heldMessages } = setup(settings({ email: undefined, teams: undefined, webhook: undefined, timezone: 'Europe/Berlin', quiet_hours: { start: '22:00', end: '07:00' } }), '2026-01-10T23:30:00Z');
    await finish(summary());
    await finish(summary({ runId: 'run-2', failed: 1 }, { status: 'failed' }));
    expect(slackTexts()).toHaveLength(1);
    expect(slackTexts()[0]).toContain('run-2 FAILED');
    expect(held).toEqual(['success:quiet-hours']);
    // What was held back is handed over whole, to be logged instead.
    expect(heldMessages).toEqual([{ subject: 'auditlog: archive run run-1 succeeded', text: expect.stringContaining('- app/public.events: archived, 120 rows archived') }]);
  });

  it('digest: per-run messages are collected and sent once at digest_time, failures at once', async () => {
    const { finish, notifier, advance, events } = setup(settings({ email: undefined, teams: undefined, webhook: undefined, digest: true, digest_time: '08:00' }), '2026-01-10T12:00:00Z');
    events.emit('run:started', { runId: 'run-1', command: 'archive', dryRun: false, at: '2026-01-10T12:00:00Z' });
    await finish(summary());
    advance(3_600_000);
    await finish(summary({ runId: 'run-2', failed: 1 }, { status: 'failed' }));
    advance(3_600_000);
    await finish(summary({ runId: 'run-3' }));
    expect(slackTexts()).toHaveLength(1);
    expect(slackTexts()[0]).toContain('run-2 FAILED');
    // 07:59 the next day: not yet; 08:00: the digest, once.
    advance(Date.parse('2026-01-11T07:59:00Z') - Date.parse('2026-01-10T14:00:00Z'));
    await notifier.flushDigestIfDue();
    expect(slackTexts()).toHaveLength(1);
    advance(60_000);
    await notifier.flushDigestIfDue();
    await notifier.flushDigestIfDue();
    expect(slackTexts()).toHaveLength(2);
    const digest = slackTexts()[1]!;
    expect(digest).toMatch(/^\*auditlog: daily digest \(3 event\(s\)\)\*/);
    expect(digest).toContain('2026-01-10T12:00:00.000Z start: auditlog: archive run run-1 started');
    expect(digest).toContain('success: auditlog: archive run run-1 succeeded\n    Archive run run-1 finished in 4.0 s: 120 rows archived from 1 table(s), 3 skipped.\n    - app/public.events: archived, 120 rows archived');
    expect(digest).toContain('success: auditlog: archive run run-3 succeeded');
    expect(digest).not.toContain('run-2');
  });

  it('digest: each text shortened, and past its size the rest counted, not listed, so chat webhooks still take it', async () => {
    const { finish, notifier, advance } = setup(settings({ email: undefined, teams: undefined, webhook: undefined, digest: true, digest_time: '08:00' }), '2026-01-10T12:00:00Z');
    // 100 runs, each listing a table whose error is 3,000 characters long.
    for (let i = 1; i <= 100; i++) {
      await finish(summary({ runId: `run-${i}`, failed: 0 }, { rowsArchived: 1, error: { code: 'X', message: 'e'.repeat(3_000) } }));
      advance(60_000);
    }
    advance(Date.parse('2026-01-11T08:00:00Z') - Date.parse('2026-01-10T13:40:00Z'));
    await notifier.flushDigestIfDue();
    const digest = slackTexts().at(-1)!;
    expect(digest).toMatch(/^\*auditlog: daily digest \(100 event\(s\)\)\*/);
    expect(digest.length).toBeLessThan(DIGEST_DETAILS_CHARS + 2_000);
    expect(digest).toContain('… (shortened: the whole text is in the log)');
    expect(digest).toMatch(/- and \d+ more message\(s\) since 2026-01-10T1\d:\d\d:00\.000Z, left out to keep the digest deliverable: see the log/);
    expect(digest).toContain('archive run run-1 succeeded');
    expect(digest).not.toContain('archive run run-100 succeeded');
  });
});
