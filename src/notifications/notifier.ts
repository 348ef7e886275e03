/**
 * Turns run events into messages: start, success, failure and threshold violations, through the
 * policy (digest, quiet hours, rate limit) to every channel. A delivery failure is reported to
 * `onFailure` (logged and counted by the caller) and never reaches the run: listeners here never
 * reject.
 */
import type { RunSummary } from '../archive/table-summary.js';
import type { NotificationKind, NotificationsConfig } from '../config/schema.js';
import type { RunEvents } from '../core/run-events.js';
import type { Channel, Message } from './channels.js';
import { NotificationPolicy, nextClockTime, type Decision } from './notification-policy.js';
import { renderMessage, type TemplateValues } from './templates.js';
import { findStaleTables, findViolations } from './thresholds.js';

export interface NotifierOptions {
  config: NotificationsConfig;
  channels: readonly Channel[];
  host: string;
  now?: () => Date;
  onFailure: (channel: string, kind: string, error: unknown) => void;
  /**
   * A message not sent now: collected for the digest, or held back by quiet hours or the rate
   * limit. `message` is what it says, for the log (which is where a held-back message goes).
   */
  onHeld?: (kind: NotificationKind, decision: Exclude<Decision, 'send'>, message: { subject: string; text: string }) => void;
  /**
   * Send the digest when a run ends instead of at `digest_time`: for a process that has one run
   * (a one-shot `archive`), which would otherwise end with its messages collected and never sent.
   */
  digestAtRunEnd?: boolean;
}

interface DigestEntry {
  at: Date;
  kind: NotificationKind;
  subject: string;
  /** The message's text: a digest that listed subjects alone lost which limit, table or hold it was about. */
  text: string;
}

export class Notifier {
  private readonly policy: NotificationPolicy;
  private readonly now: () => Date;
  private readonly lastArchived = new Map<string, number>();
  /** The tables of each run under way (from run:started), for the payload of a run that fails as a whole. */
  private readonly runTables = new Map<string, readonly { database: string; schema: string; table: string }[]>();
  /**
   * Dry runs under way: they send nothing. A dry run archives nothing, so "succeeded, 0 rows
   * archived" and "nothing archived for D days" about it would be false alarms or false comfort
   * (found by probing: `archive --dry-run` sent both, like a real run).
   */
  private readonly dryRuns = new Set<string>();
  private digest: DigestEntry[] = [];
  private digestSince: Date;
  private nextDigestAt: Date;

  constructor(private readonly options: NotifierOptions) {
    this.now = options.now ?? (() => new Date());
    this.policy = new NotificationPolicy(options.config);
    this.digestSince = this.now();
    this.nextDigestAt = nextClockTime(this.digestSince, options.config.digest_time, options.config.timezone);
  }

  subscribe(events: RunEvents): () => void {
    const offs = [
      events.on('run:started', (e) => {
        if (e.dryRun) {
          this.dryRuns.add(e.runId);
          return;
        }
        if (e.tables !== undefined) this.forgetAllBut(e.tables);
        this.runTables.set(e.runId, e.tables ?? []);
        // The run's first sight of each table is the baseline of "nothing archived for D days" — not
        // the table's own start, which a table failing before it (database down, lock held
        // elsewhere, table missing) never reached: it never warned (found by probing).
        this.setBaseline(e.tables ?? []);
        return this.notify('start', { run_id: e.runId, time: e.at }, { run_id: e.runId });
      }),
      events.on('table:started', (t) => {
        if (!this.dryRuns.has(t.runId)) this.setBaseline([t]);
      }),
      events.on('table:finished', ({ summary: t }) => {
        if (t.rowsArchived > 0) this.lastArchived.set(tableKey(t), this.now().getTime());
      }),
      events.on('run:finished', ({ summary }) => {
        this.runTables.delete(summary.runId);
        if (this.dryRuns.delete(summary.runId)) return;
        return this.onRunFinished(summary);
      }),
      events.on('run:failed', ({ runId, command, error }) => {
        if (this.dryRuns.delete(runId)) return;
        const runTables = this.runTables.get(runId) ?? [];
        this.runTables.delete(runId);
        // The same fields as any failure payload: every table of the run failed with the run's error.
        const tables = runTables.map((t) => ({ database: t.database, table: `${t.schema}.${t.table}`, status: 'failed', rows_archived: 0, error: error.code }));
        if (command !== 'archive') return this.onRunFailed(runId, error, tables, false);
        // A run that failed before its tables started still saw them: without this baseline, a
        // daemon whose every run failed from its start (storage down, a file that no longer loads)
        // never reported "nothing archived for D days".
        this.setBaseline(runTables);
        return this.onRunFailed(runId, error, tables, true);
      }),
    ];
    return () => offs.forEach((off) => off());
  }

  /** Starts the "nothing archived for D days" count of each table this process has not seen yet. */
  private setBaseline(tables: readonly { database: string; schema: string; table: string }[]): void {
    const now = this.now().getTime();
    for (const t of tables) if (!this.lastArchived.has(tableKey(t))) this.lastArchived.set(tableKey(t), now);
  }

  /**
   * Drops the "last archived" of every table not in `configured`: the daemon reads its file again
   * before each run, and a table removed from it otherwise kept its "nothing archived for N days"
   * warning going until a restart. Every run covers the whole configuration (as the metrics
   * assume in forgetAllBut, src/monitoring/archive-metrics.ts), so other tables are stale.
   */
  private forgetAllBut(configured: readonly { database: string; schema: string; table: string }[]): void {
    const keep = new Set(configured.map((t) => tableKey(t)));
    for (const key of this.lastArchived.keys()) if (!keep.has(key)) this.lastArchived.delete(key);
  }

  private async onRunFailed(runId: string, error: { code: string; message: string }, tables: Record<string, unknown>[], checkStaleTables: boolean): Promise<void> {
    const data = { run_id: runId, outcome: 'failed', failed: tables.length, rows_archived: 0, tables };
    await this.notify('failure', { run_id: runId, failed: 'all', duration: '0 s', details: `- the run could not start: ${error.code}: ${error.message}` }, { ...data, error });
    // The run's other limits (duration, rows skipped) need a finished run; staleness does not,
    // and an outage that stops every run is when it must fire (found by probing).
    const violations = checkStaleTables ? findStaleTables(this.options.config.thresholds, this.lastArchived, this.now().getTime()) : [];
    if (violations.length > 0) await this.notify('threshold', { run_id: runId, details: fitDetails(violations.map((v) => ({ line: `- ${v}` })), 'limit(s) crossed') }, { ...data, violations });
    await this.flushDigestAtRunEnd();
  }

  private async onRunFinished(summary: RunSummary): Promise<void> {
    const values = runValues(summary);
    const data = { run_id: summary.runId, outcome: values.outcome, failed: summary.failed, rows_archived: values.rows_archived, tables: summary.tables.map((t) => ({ database: t.database, table: `${t.schema}.${t.table}`, status: t.status, rows_archived: t.rowsArchived, error: t.error?.code ?? null })) };
    await this.notify(summary.failed > 0 ? 'failure' : 'success', values, data);
    // A table kept out by a legal hold is not a failure, but someone must know (issue #6): it is
    // reported with the thresholds, which are sent by default.
    const held = summary.tables
      .filter((t) => t.status === 'held')
      .map((t) => `${t.database}/${t.schema}.${t.table} not archived: held by a legal hold${t.holds?.tableLevel.length ? ` (${t.holds.tableLevel.join('; ')})` : ''}`);
    const violations = [...held, ...findViolations(summary, this.options.config.thresholds, this.lastArchived, this.now().getTime())];
    if (violations.length > 0) await this.notify('threshold', { ...values, details: fitDetails(violations.map((v) => ({ line: `- ${v}` })), 'limit(s) crossed') }, { ...data, violations });
    await this.flushDigestAtRunEnd();
  }

  private async flushDigestAtRunEnd(): Promise<void> {
    if (this.options.digestAtRunEnd === true) await this.flushDigest();
    else await this.flushDigestIfDue();
  }

  /** Sends (or holds) one message of `kind`, if `notifications.events` lists it. */
  async notify(kind: NotificationKind, values: TemplateValues, data: Record<string, unknown> = {}): Promise<void> {
    if (!this.options.config.events.includes(kind)) return;
    const at = this.now();
    const rendered = renderMessage(kind, this.options.config.templates, { host: this.options.host, time: at.toISOString(), ...values });
    const decision = this.policy.decide(kind, at);
    if (decision === 'digest') this.digest.push({ at, kind, ...rendered });
    if (decision !== 'send') {
      this.options.onHeld?.(kind, decision, rendered);
      return;
    }
    await this.deliver({ kind, ...rendered, data });
  }

  /** Sends the digest once its time has come and something was collected (the daemon calls this on a timer too). */
  async flushDigestIfDue(): Promise<void> {
    if (this.now() < this.nextDigestAt) return;
    await this.flushDigest();
  }

  /**
   * Sends what was collected for the digest, if anything, now: at digest_time, at the end of a
   * one-shot run, and when the daemon stops (a daemon redeployed every day before digest_time
   * otherwise never sent one — legal-hold notices included; found by probing).
   */
  async flushDigest(): Promise<void> {
    const now = this.now();
    if (!this.options.config.digest) return;
    const entries = this.digest;
    const since = this.digestSince;
    this.digest = [];
    this.digestSince = now;
    this.nextDigestAt = nextClockTime(now, this.options.config.digest_time, this.options.config.timezone);
    if (entries.length === 0) return;
    const shown = digestEntries(entries);
    const rendered = renderMessage('digest', this.options.config.templates, { host: this.options.host, time: now.toISOString(), count: entries.length, since: since.toISOString(), details: shown.details });
    await this.deliver({ kind: 'digest', ...rendered, data: { entries: shown.entries } });
  }

  private async deliver(message: Message): Promise<void> {
    await Promise.all(
      this.options.channels.map(async (channel) => {
        try {
          await channel.send(message);
        } catch (error) {
          this.options.onFailure(channel.name, message.kind, error);
        }
      }),
    );
  }
}

/** Characters of one collected message's text shown in the digest; the rest is in the log. */
export const DIGEST_TEXT_CHARS = 1_000;
/**
 * Characters of the whole digest's list: chat webhooks refuse bigger messages (Teams ~28 KB,
 * Slack 40,000 characters), and a refused digest is lost whole. Past it, entries are counted, not listed.
 */
export const DIGEST_DETAILS_CHARS = 20_000;

/**
 * A run's list of tables, or of limits crossed, within DIGEST_DETAILS_CHARS: a run over a few
 * hundred tables that all failed made a failure message Teams refuses (~28 KB), lost exactly when
 * it matters (found by probing). Unchanged when it fits; otherwise the `first` lines (the failed
 * tables) come first, each shortened to DIGEST_TEXT_CHARS, and the rest are counted.
 */
export function fitDetails(items: readonly { line: string; first?: boolean }[], noun: string): string {
  const all = items.map((i) => i.line);
  if (all.join('\n').length <= DIGEST_DETAILS_CHARS) return all.join('\n');
  const ordered = [...items.filter((i) => i.first === true), ...items.filter((i) => i.first !== true)];
  const lines: string[] = [];
  let size = 0;
  for (const [i, item] of ordered.entries()) {
    const line = item.line.length > DIGEST_TEXT_CHARS ? `${item.line.slice(0, DIGEST_TEXT_CHARS)}… (shortened: the whole text is in the log)` : item.line;
    if (size + line.length > DIGEST_DETAILS_CHARS) {
      const rest = ordered.slice(i);
      const firsts = rest.filter((r) => r.first === true).length;
      lines.push(`- and ${rest.length} more ${noun}${firsts > 0 ? ` (${firsts} of them failed)` : ''}, left out to keep the message deliverable: see the log and \`auditlog status\``);
      break;
    }
    size += line.length + 1;
    lines.push(line);
  }
  return lines.join('\n');
}

/** The digest's list (each entry's text indented under its line, shortened) within DIGEST_DETAILS_CHARS, and its entries for the payload. */
function digestEntries(entries: readonly DigestEntry[]): { details: string; entries: { at: string; kind: NotificationKind; subject: string; text: string }[] } {
  const lines: string[] = [];
  const shown: { at: string; kind: NotificationKind; subject: string; text: string }[] = [];
  let size = 0;
  for (const [i, e] of entries.entries()) {
    const text = e.text.length > DIGEST_TEXT_CHARS ? `${e.text.slice(0, DIGEST_TEXT_CHARS)}… (shortened: the whole text is in the log)` : e.text;
    const line = `- ${e.at.toISOString()} ${e.kind}: ${e.subject}${text === '' ? '' : `\n${indent(text)}`}`;
    if (size + line.length > DIGEST_DETAILS_CHARS) {
      lines.push(`- and ${entries.length - i} more message(s) since ${e.at.toISOString()}, left out to keep the digest deliverable: see the log (\`notification held back\`)`);
      break;
    }
    size += line.length + 1;
    lines.push(line);
    shown.push({ at: e.at.toISOString(), kind: e.kind, subject: e.subject, text });
  }
  return { details: lines.join('\n'), entries: shown };
}

/** A collected message's text under its line in the digest. */
function indent(text: string): string {
  return text
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
}

/** How a table is named in threshold messages and keyed in `lastArchived`. */
function tableKey(t: { database: string; schema: string; table: string }): string {
  return `${t.database}/${t.schema}.${t.table}`;
}

/**
 * What became of a run, in a word or three. A daemon's stop ends its tables as archived, not
 * failed: the run did not fail, but neither did it finish, and "succeeded" said it had (found by
 * probing).
 */
function runOutcome(summary: RunSummary): string {
  if (summary.failed > 0) return 'failed';
  return summary.stopped === undefined ? 'succeeded' : 'stopped before the end';
}

function runValues(summary: RunSummary): TemplateValues {
  const details = fitDetails(
    summary.tables.map((t) => ({
      line: `- ${t.database}/${t.schema}.${t.table}: ${t.status}${t.stopped === true && t.status !== 'failed' ? ' (stopped before the end)' : ''}, ${t.rowsArchived} rows archived${t.error === undefined ? '' : ` — ${t.error.code}: ${t.error.message}`}`,
      first: t.status === 'failed',
    })),
    'table(s)',
  );
  return {
    run_id: summary.runId,
    outcome: runOutcome(summary),
    duration: `${(summary.durationMs / 1000).toFixed(1)} s`,
    rows_archived: summary.tables.reduce((n, t) => n + t.rowsArchived, 0),
    rows_skipped: summary.tables.reduce((n, t) => n + t.rowsSkipped, 0),
    tables: summary.tables.length,
    failed: summary.failed,
    details,
  };
}
