/**
 * Composition of notifications: channels from the config, the notifier subscribed to run events,
 * every failure logged (secret-free) and counted in the metrics. In the daemon a timer also sends
 * the daily digest when no run happens to end near its time.
 */
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.js';
import { redactSecrets, urlSecretParts } from '../config/mask-secrets.js';
import { describeError } from '../core/errors.js';
import type { RunEvents } from '../core/run-events.js';
import type { ArchiveMetrics } from '../monitoring/archive-metrics.js';
import { createChannels, type Channel } from '../notifications/channels.js';
import { Notifier } from '../notifications/notifier.js';

/** `value` with every string in it (values, not keys) passed through `redact`. */
function redactStrings(value: unknown, redact: (text: string) => string): unknown {
  if (typeof value === 'string') return redact(value);
  if (Array.isArray(value)) return value.map((v) => redactStrings(v, redact));
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, redactStrings(v, redact)]));
  return value;
}

export function attachNotifications(options: {
  config: Config;
  events: RunEvents;
  metrics: ArchiveMetrics;
  logger: Logger;
  secrets: readonly string[];
  /**
   * When the digest goes out: `daily` at digest_time (the daemon, with a timer for when no run
   * ends near it), or `end-of-run` (a one-shot archive: the process ends with its run, and a
   * digest kept for later would never be sent — legal-hold notices included).
   */
  digest: 'daily' | 'end-of-run';
}): () => Promise<void> {
  const settings = options.config.notifications;
  if (settings === undefined) return async () => undefined;
  const redact = (text: string): string => redactSecrets(text, options.secrets);
  // In a delivery error a webhook URL is secret in its parts too: a server or proxy may echo only
  // its path or token (the channel redacts them already; this is the last line of defence). Not
  // applied to messages: a path segment such as "auditlog" must not be masked in the text sent.
  const webhookUrls = [settings.slack?.webhook_url, settings.teams?.webhook_url, settings.webhook?.webhook_url].filter((u) => u !== undefined);
  const errorSecrets = [...options.secrets, ...webhookUrls.flatMap((url) => urlSecretParts(url))];
  // Table errors in a message were redacted by the pipeline already; this is the last line of
  // defence — for the generic webhook's data too, which carries the digest's texts (found in review).
  const channels: Channel[] = createChannels(settings).map((c) => ({ name: c.name, send: (m) => c.send({ ...m, subject: redact(m.subject), text: redact(m.text), data: redactStrings(m.data, redact) as Record<string, unknown> }) }));
  const notifier = new Notifier({
    config: settings,
    channels,
    host: hostname(),
    onFailure: (channel, kind, error) => {
      options.metrics.countNotificationFailure(channel);
      options.logger.warn({ channel, event: kind, err: redactSecrets(describeError(error), errorSecrets) }, 'notification not delivered; the run is not affected');
    },
    // Held back means "logged instead" (docs/configuration.md): with what it says, and a failure
    // or threshold as a warning, so that --quiet (warnings and errors) keeps it too. Found by
    // probing: the line named only the event, and --quiet dropped it.
    onHeld: (kind, decision, message) => {
      const fields = { event: kind, reason: decision, subject: redact(message.subject), text: redact(message.text) };
      if (kind === 'failure' || kind === 'threshold') options.logger.warn(fields, 'notification held back');
      else options.logger.info(fields, 'notification held back');
    },
    digestAtRunEnd: options.digest === 'end-of-run',
  });
  const off = notifier.subscribe(options.events);
  let timer: NodeJS.Timeout | undefined;
  if (options.digest === 'daily' && settings.digest) {
    timer = setInterval(() => void notifier.flushDigestIfDue(), 60_000);
    timer.unref();
  }
  // Detaching sends what the digest still holds: a daemon stopped before digest_time would
  // otherwise drop it (a one-shot run has sent it at its end already: nothing is left).
  return async () => {
    clearInterval(timer);
    off();
    await notifier.flushDigest();
  };
}
