/**
 * An audit append while the storage circuit's one trial request is in flight (the daemon's first
 * run after an outage: its storage check is the trial, and the run's ARCHIVE_START append went out
 * beside it). The append waits for the trial's verdict instead of being lost (found by probing).
 * The store under the breaker is a real local store with a gate on check() (the trial).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { StorageAuditTrail, readAuditRecords } from '../../src/compliance/audit-trail.js';
import { AUDIT_PREFIX } from '../../src/compliance/audit-record.js';
import { CircuitBreaker } from '../../src/storage/circuit-breaker.js';
import { CircuitBreakerObjectStore, CircuitGuard } from '../../src/storage/circuit-breaker-object-store.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

/** A local store whose check() waits for the test to say how it ends, and whose puts can be made to fail as an outage does. */
class GatedStore extends LocalObjectStore {
  down = false;
  private gate: { resolve: () => void; reject: (e: unknown) => void } | undefined;
  checkStarted = false;
  override async check(): Promise<void> {
    this.checkStarted = true;
    await new Promise<void>((resolve, reject) => (this.gate = { resolve, reject }));
  }
  override async put(...args: Parameters<LocalObjectStore['put']>): ReturnType<LocalObjectStore['put']> {
    if (this.down) throw new AuditlogError('STORAGE_UNREACHABLE', 'connect ECONNREFUSED', { details: { transient: true } });
    return super.put(...args);
  }
  endCheck(error?: unknown): void {
    if (error === undefined) this.gate!.resolve();
    else this.gate!.reject(error);
  }
}

async function setup() {
  const dir = await mkdtemp(path.join(tmpdir(), 'audit-circuit-'));
  dirs.push(dir);
  let t = Date.parse('2026-01-01T00:00:00Z');
  const now = (): number => t;
  const inner = new GatedStore({ path: dir });
  const breaker = new CircuitBreaker({ failureThreshold: 1, recoveryTimeoutMs: 30_000, now });
  const store = new CircuitBreakerObjectStore(inner, new CircuitGuard({ breaker, endpoint: dir, settingPath: 's3.circuit_breaker', now }));
  const trail = new StorageAuditTrail(store, 'tester', () => new Date(t));
  await trail.open();
  // An outage opens the circuit; then its recovery time passes.
  inner.down = true;
  await expect(store.put('probe', Buffer.from('x'))).rejects.toThrow();
  inner.down = false;
  t += 31_000;
  return { inner, store, trail, breaker };
}

describe('audit append during a storage circuit trial', () => {
  it('waits for a trial that succeeds, then writes the record', async () => {
    const { inner, store, trail, breaker } = await setup();
    const check = store.check();
    expect(breaker.snapshot()).toMatchObject({ state: 'HALF_OPEN', trialInFlight: true });
    const appended = trail.append({ event: 'ARCHIVE_START', runId: 'run-1', status: 'started' });
    await new Promise((r) => setTimeout(r, 300));
    expect(inner.checkStarted).toBe(true);
    inner.endCheck();
    await check;
    await expect(appended).resolves.toMatchObject({ event: 'ARCHIVE_START' });
    expect((await readAuditRecords(store, AUDIT_PREFIX)).map((r) => JSON.parse(r.body.toString('utf8')).event)).toEqual(['ARCHIVE_START']);
  });

  it('fails as before once the trial fails: the storage is still down', async () => {
    const { inner, store, trail } = await setup();
    const check = store.check().catch((e: unknown) => e);
    const appended = trail.append({ event: 'ARCHIVE_START', runId: 'run-1', status: 'started' }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 300));
    inner.endCheck(new AuditlogError('STORAGE_UNREACHABLE', 'connect ECONNREFUSED', { details: { transient: true } }));
    await check;
    const error = (await appended) as AuditlogError;
    expect(error.code).toBe('AUDIT_WRITE_FAILED');
    expect(error.message).toContain('storage circuit');
  });
});
