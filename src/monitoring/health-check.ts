/**
 * The health report of `/health` and `auditlog health`: every configured database and the bucket
 * checked at once, each with a timeout and its response time. Classification is pure:
 * healthy (all up), degraded (some database down, storage up), unhealthy (storage down, every
 * database down, the audit trail's database down, or — in the daemon — its runs refused because
 * its configuration file no longer loads or changed where a restart is needed, or its audit trail
 * cannot be opened) — only unhealthy means the archiver cannot do any work.
 */
import { describeError } from '../core/errors.js';

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';

/**
 * `configuration`: the daemon's own check that its scheduled runs are not refused (see
 * monitoring-setup.ts); `audit`: the audit trail's database, or (daemon) the trail that could not
 * be opened. Any of them down, or the storage, means no run can archive.
 */
export type CheckKind = 'database' | 'storage' | 'configuration' | 'audit';

export interface HealthTarget {
  kind: CheckKind;
  name: string;
  /** `signal` aborts when the check is past its timeout: whatever it still waits on is to be given up at once. */
  check: (signal: AbortSignal) => Promise<void>;
}

export interface CheckResult {
  kind: CheckKind;
  name: string;
  status: 'up' | 'down';
  response_time_ms: number;
  error?: string;
}

export interface HealthReport {
  status: HealthStatus;
  checked_at: string;
  checks: CheckResult[];
}

export function classifyHealth(checks: readonly Pick<CheckResult, 'kind' | 'status'>[]): HealthStatus {
  const down = checks.filter((c) => c.status === 'down');
  if (down.length === 0) return 'healthy';
  const databases = checks.filter((c) => c.kind === 'database');
  if (down.some((c) => c.kind !== 'database') || (databases.length > 0 && databases.every((c) => c.status === 'down'))) return 'unhealthy';
  return 'degraded';
}

/** HTTP status of a report: load balancers and Kubernetes probes read only this. */
export function healthHttpStatus(status: HealthStatus): number {
  return status === 'unhealthy' ? 503 : 200;
}

export async function checkHealth(targets: readonly HealthTarget[], options: { timeoutMs: number; redact: (text: string) => string; now?: () => Date }): Promise<HealthReport> {
  const checks = await Promise.all(targets.map((t) => runCheck(t, options.timeoutMs, options.redact)));
  return { status: classifyHealth(checks), checked_at: (options.now ?? (() => new Date()))().toISOString(), checks };
}

async function runCheck(target: HealthTarget, timeoutMs: number, redact: (text: string) => string): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  // The verdict is given at the timeout; the attempt is ended then too, not left to its own,
  // longer timeouts (found by probing: `auditlog health` printed at 5 s and exited at 15 s, when
  // the connection attempt's own timeout fired; in the daemon each /health left one pending).
  const abandon = new AbortController();
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new Error(`no answer within ${timeoutMs} ms`);
      reject(error);
      abandon.abort(error);
    }, timeoutMs);
  });
  try {
    await Promise.race([target.check(abandon.signal), timeout]);
    return { kind: target.kind, name: target.name, status: 'up', response_time_ms: elapsed(started) };
  } catch (error) {
    return { kind: target.kind, name: target.name, status: 'down', response_time_ms: elapsed(started), error: redact(describeError(error)) };
  } finally {
    clearTimeout(timer);
  }
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

export function formatHealthReport(report: HealthReport): string {
  const lines = report.checks.map((c) => `${c.status === 'up' ? 'ok  ' : 'DOWN'} ${c.kind} ${c.name} (${c.response_time_ms} ms)${c.error === undefined ? '' : `: ${c.error}`}`);
  return `${lines.join('\n')}\n${report.status}\n`;
}
