/**
 * A storage check its caller gives up (a /health deadline, a stop request) is no verdict on the
 * endpoint and must not hold the process (found in review of the abortable checks):
 * - the daemon's /health shares the runs' circuit breaker: five checks given up at their deadline
 *   against slow storage opened the circuit, and the runs then failed STORAGE_CIRCUIT_OPEN;
 * - a check given up during a retry's back-off wait (a 503 with Retry-After: 40) printed its
 *   result at the deadline, then held the process until the wait's timer ran out (~40 s).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { respondWithS3Error, startFaultHttpServer, type FaultHttpServer } from '../helpers/fault-http-server.js';
import { runCli } from '../helpers/run-cli.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import { s3Schema } from '../../src/config/schema.js';

const credentials = { access_key_id: 'AKIAEXAMPLE', secret_access_key: 'secretsecretsecret', region: 'us-east-1', force_path_style: true };

describe('a check given up by its caller and the circuit breaker', () => {
  let fault: FaultHttpServer;
  beforeAll(async () => {
    fault = await startFaultHttpServer();
  });
  afterAll(async () => fault.stop());

  it('is not counted: five /health checks given up at their deadline leave the circuit closed for the runs', async () => {
    const store = await createObjectStore({ s3: s3Schema.parse({ bucket: 'check-bucket', endpoint: fault.endpoint, ...credentials }) });
    for (let i = 0; i < 5; i++) {
      fault.enqueue({ kind: 'stall' });
      const giveUp = new AbortController();
      setTimeout(() => giveUp.abort(new Error('no answer within 300 ms')), 300);
      await expect(store.check({ signal: giveUp.signal })).rejects.toThrow();
    }
    fault.enqueue({ kind: 'respond', status: 200, body: 'hello' });
    expect((await store.get('a.txt'))?.toString()).toBe('hello');
  });
});

describe('a check given up during a back-off wait', () => {
  let fault: FaultHttpServer;
  let dir: string;
  beforeAll(async () => {
    // Every request: 503 SlowDown asking to come back in 40 s (honoured up to 60 s).
    fault = await startFaultHttpServer({ fallback: respondWithS3Error(503, 'SlowDown', { 'retry-after': '40' }) });
    dir = await mkdtemp(join(tmpdir(), 'aborted-check-'));
  });
  afterAll(async () => {
    await fault.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const yaml = (): string => `s3:
  bucket: check-bucket
  endpoint: ${fault.endpoint}
  region: us-east-1
  force_path_style: true
  access_key_id: AKIAEXAMPLE
  secret_access_key: secretsecretsecret
monitoring:
  health_check_timeout_ms: 2000
databases:
  - name: app
    url: postgresql://postgres@127.0.0.1:1/nowhere
    tables:
      - name: events
        timestamp_column: happened_at
`;

  it.each([[['health']], [['config', 'validate', '--check-connections']]])('auditlog %j exits right after the check is given up, exit 1', async (args) => {
    const file = join(dir, `${args[0]}.yaml`);
    await writeFile(file, yaml());
    const started = performance.now();
    const r = await runCli([...args, '--config', file], {}, 90_000);
    expect(r.code, r.stderr).toBe(1);
    // The 2 s timeout plus start-up; the back-off wait it was in would have been 40 s.
    expect(performance.now() - started).toBeLessThan(2_000 + 8_000);
  }, 90_000);

  it('names the answer it was retrying, not only "no answer": the server did answer, with 503 SlowDown', async () => {
    const store = await createObjectStore({ s3: s3Schema.parse({ bucket: 'check-bucket', endpoint: fault.endpoint, ...credentials }) });
    const giveUp = new AbortController();
    setTimeout(() => giveUp.abort(new Error('no answer within 500 ms')), 500);
    const error = await store.check({ signal: giveUp.signal }).then(
      () => undefined,
      (e: unknown) => e as { code?: string; message: string; details?: Record<string, unknown> },
    );
    expect(error?.code).toBe('STORAGE_UNREACHABLE');
    expect(error?.message).toMatch(/no answer within 500 ms; last attempt: .*503/);
    expect(error?.message).toContain('answered, with errors retried until then');
    expect(error?.message).not.toContain('secretsecretsecret');
    expect(String(error?.details?.last_failure)).toMatch(/503/);
  });
});
