/**
 * Where messages go: email over SMTP (nodemailer), Slack and Teams incoming webhooks, and a
 * generic JSON webhook. Each channel only delivers; what to send and when is decided elsewhere.
 * A delivery that fails throws (the notifier logs and counts it); secrets stay in the config.
 */
import type { Transporter } from 'nodemailer';
import { redactSecrets, urlSecretParts } from '../config/mask-secrets.js';
import type { NotificationsConfig } from '../config/schema.js';
import { describeFetchFailure } from '../core/describe-fetch-failure.js';
import { describeError } from '../core/errors.js';
import { readBodyPrefix } from '../core/read-response-body.js';

export interface Message {
  kind: string;
  subject: string;
  text: string;
  /** Fields for machine readers (the generic webhook). */
  data: Record<string, unknown>;
}

export interface Channel {
  readonly name: 'email' | 'slack' | 'teams' | 'webhook';
  send(message: Message): Promise<void>;
}

export function createChannels(config: NotificationsConfig): Channel[] {
  const channels: Channel[] = [];
  if (config.email !== undefined) channels.push(emailChannel(config.email, config.timeout_ms));
  if (config.slack !== undefined) channels.push(webhookChannel('slack', config.slack.webhook_url, config.timeout_ms, slackPayload));
  if (config.teams !== undefined) channels.push(webhookChannel('teams', config.teams.webhook_url, config.timeout_ms, teamsPayload));
  if (config.webhook !== undefined) channels.push(webhookChannel('webhook', config.webhook.webhook_url, config.timeout_ms, genericPayload));
  return channels;
}

function emailChannel(email: NonNullable<NotificationsConfig['email']>, timeoutMs: number): Channel {
  // nodemailer (~0.1 s of CPU to load) is imported at the first message, not by every run that
  // has notifications configured; one transport serves every message after it.
  let transport: Promise<Transporter> | undefined;
  const createTransport = async (): Promise<Transporter> => {
    const { default: nodemailer } = await import('nodemailer');
    return nodemailer.createTransport({
      host: email.host,
      port: email.port,
      secure: email.secure,
      requireTLS: email.require_tls,
      tls: { rejectUnauthorized: email.tls_reject_unauthorized },
      ...(email.username === undefined ? {} : { auth: { user: email.username, pass: email.password ?? '' } }),
      connectionTimeout: timeoutMs,
      greetingTimeout: timeoutMs,
      socketTimeout: timeoutMs,
    });
  };
  return {
    name: 'email',
    send: async (m) => {
      transport ??= createTransport();
      await (await transport).sendMail({ from: email.from, to: email.to, subject: m.subject, text: m.text });
    },
  };
}

/** Slack incoming webhook: `text` is required; the subject goes first in bold. */
export function slackPayload(m: Message): unknown {
  return { text: `*${m.subject}*\n${m.text}` };
}

/** Teams incoming webhook (MessageCard, which Teams and Power Automate workflows accept). */
export function teamsPayload(m: Message): unknown {
  return { '@type': 'MessageCard', '@context': 'https://schema.org/extensions', summary: m.subject, title: m.subject, text: m.text.replace(/\n/g, '  \n'), themeColor: m.kind === 'failure' ? 'D70000' : '0076D7' };
}

export function genericPayload(m: Message): unknown {
  return { event: m.kind, subject: m.subject, text: m.text, ...m.data };
}

/** Where a redirect points, as its origin only: its path and query may carry the token. */
function redirectTarget(url: string, location: string | null): string {
  if (location === null) return '';
  try {
    const origin = new URL(location, url).origin;
    return origin === 'null' ? '' : ` to ${origin}`;
  } catch {
    return '';
  }
}

/** Of an answer, what is read: room for the 200 characters shown after secrets are redacted. */
const MAX_BODY_BYTES = 4096;

function webhookChannel(name: 'slack' | 'teams' | 'webhook', url: string, timeoutMs: number, payload: (m: Message) => unknown): Channel {
  const label = name === 'webhook' ? 'webhook' : `${name} webhook`;
  const secrets = urlSecretParts(url);
  return {
    name,
    send: async (m) => {
      let res: Response;
      try {
        res = await fetch(url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(payload(m)),
          signal: AbortSignal.timeout(timeoutMs),
          // A 301/302/303 followed resends the POST as a GET without the message, and a 200 to that
          // GET looked delivered while the message was lost (found by probing: an http:// URL
          // redirected to https://). A redirect is a failure that names where it points instead.
          redirect: 'manual',
        });
      } catch (error) {
        if (error instanceof Error && error.name === 'TimeoutError') throw new Error(`${label} did not answer within ${timeoutMs} ms (notifications.timeout_ms)`, { cause: error });
        // "fetch failed" alone tells nothing: say why (refused, TLS, redirect loop...), never the URL.
        throw new Error(`${label} could not be reached: ${describeFetchFailure(error, (text) => redactSecrets(text, secrets))}`, { cause: error });
      }
      // Delivered: the rest of the answer is not waited for (a server that sends its status and
      // then stalls would otherwise turn a delivery into a timeout).
      if (res.ok) {
        await res.body?.cancel().catch(() => undefined);
        return;
      }
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => undefined);
        throw new Error(`${label} answered HTTP ${res.status}, a redirect${redirectTarget(url, res.headers.get('location'))}, which is not followed (the message would be resent without its body, or to another server): set its webhook_url to the address it redirects to`);
      }
      // Of an error, only the start of the answer is ever shown (it may name the problem); the
      // rest is cancelled, which also releases the connection.
      let text: string;
      try {
        text = await readBodyPrefix(res, MAX_BODY_BYTES);
      } catch (error) {
        // The status came, the rest of the error's answer did not (the same deadline covers it):
        // say what came, not the bare abort (found by probing).
        const stalled = error instanceof Error && error.name === 'TimeoutError';
        throw new Error(`${label} answered HTTP ${res.status}, then ${stalled ? `did not finish its answer within ${timeoutMs} ms (notifications.timeout_ms)` : `broke off its answer: ${redactSecrets(describeError(error), secrets)}`}`, { cause: error });
      }
      // The URL holds the token: name the channel and the status, never the URL. Servers echo the
      // path or a segment of it ("Cannot POST /hook/T0KEN"): those are redacted from the body,
      // before it is shortened so that no token is cut in half and left unmatched.
      const body = redactSecrets(text, secrets).slice(0, 200);
      throw new Error(`${label} answered HTTP ${res.status}${body === '' ? '' : `: ${body}`}`);
    },
  };
}
