/** Loopback receivers for notification tests: an SMTP server (smtp-server) and JSON webhook endpoints. */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';

export interface ReceivedMail {
  from: string;
  to: string[];
  user: string | undefined;
  raw: string;
}

export async function startSmtpReceiver(credentials: { user: string; pass: string }): Promise<{ port: number; mails: ReceivedMail[]; stop: () => Promise<void> }> {
  const mails: ReceivedMail[] = [];
  const server = new SMTPServer({
    disabledCommands: ['STARTTLS'],
    // Plain-text AUTH is fine on loopback; production servers get TLS from `secure`/STARTTLS.
    allowInsecureAuth: true,
    onAuth(auth, _session, callback) {
      if (auth.username === credentials.user && auth.password === credentials.pass) callback(null, { user: auth.username });
      else callback(new Error('Invalid username or password'));
    },
    onData(stream, session, callback) {
      let raw = '';
      stream.on('data', (d: Buffer) => (raw += d.toString()));
      stream.on('end', () => {
        mails.push({
          from: session.envelope.mailFrom === false ? '' : session.envelope.mailFrom.address,
          to: session.envelope.rcptTo.map((r) => r.address),
          user: session.user as string | undefined,
          raw,
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.server.address() as AddressInfo).port, mails, stop: () => new Promise((resolve) => server.close(() => resolve())) };
}

export interface WebhookReceiver {
  url: (path: string) => string;
  /** Bodies received, by path. */
  received: Map<string, unknown[]>;
  /** Answer this status on a path (default 200). */
  statusFor: Map<string, number>;
  /** The body of a non-200 answer on a path, from the request path (default "invalid_token"). */
  bodyFor: Map<string, (path: string) => string>;
  stop: () => Promise<void>;
}

export async function startWebhookReceiver(): Promise<WebhookReceiver> {
  const received = new Map<string, unknown[]>();
  const statusFor = new Map<string, number>();
  const bodyFor = new Map<string, (path: string) => string>();
  const server: Server = createServer((req: IncomingMessage, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const path = req.url ?? '/';
      const list = received.get(path) ?? [];
      list.push(JSON.parse(body));
      received.set(path, list);
      const status = statusFor.get(path) ?? 200;
      res.writeHead(status).end(status === 200 ? 'ok' : (bodyFor.get(path)?.(path) ?? 'invalid_token'));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    received,
    statusFor,
    bodyFor,
    stop: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
