import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { localSchema, s3Schema } from '../../src/config/schema.js';
import { CircuitBreakerObjectStore } from '../../src/storage/circuit-breaker-object-store.js';
import type { CircuitStateChange } from '../../src/storage/circuit-breaker.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import { respondWithS3Error, startFaultHttpServer, type FaultHttpServer } from '../helpers/fault-http-server.js';

describe('createObjectStore', () => {
  it('builds an S3ObjectStore for `s3:`, behind a circuit breaker', async () => {
    const store = await createObjectStore({ s3: s3Schema.parse({ bucket: 'audit-archive', prefix: 'archives/', access_key_id: 'AKIAEXAMPLEKEY', secret_access_key: 'very-secret-value' }) });
    expect(store).toBeInstanceOf(CircuitBreakerObjectStore);
    expect((store as CircuitBreakerObjectStore).inner).toBeInstanceOf(S3ObjectStore);
    expect(store.description).toBe('s3://audit-archive/archives/');
    ((store as CircuitBreakerObjectStore).inner as S3ObjectStore).destroy();
  });

  it('builds a LocalObjectStore for `local:`, behind a circuit breaker', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-create-'));
    try {
      const store = await createObjectStore({ local: localSchema.parse({ path: dir }) });
      expect(store).toBeInstanceOf(CircuitBreakerObjectStore);
      expect((store as CircuitBreakerObjectStore).inner).toBeInstanceOf(LocalObjectStore);
      await store.put('a/b.txt', Buffer.from('x'));
      expect((await store.get('a/b.txt'))?.toString()).toBe('x');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a config with neither', async () => {
    await expect(createObjectStore({})).rejects.toThrow(AuditlogError);
  });
});

describe('createObjectStore: circuit breaker and rate limit', () => {
  let fault: FaultHttpServer;
  let store: CircuitBreakerObjectStore | undefined;
  beforeEach(async () => {
    fault = await startFaultHttpServer({ fallback: respondWithS3Error(500, 'InternalError') });
  });
  afterEach(async () => {
    (store?.inner as S3ObjectStore | undefined)?.destroy();
    await fault.stop();
  });

  it('opens s3.circuit_breaker after failure_threshold failed operations: no request leaves while it is open', async () => {
    const changes: CircuitStateChange[] = [];
    const s3 = s3Schema.parse({
      bucket: 'fault-bucket',
      endpoint: fault.endpoint,
      force_path_style: true,
      access_key_id: 'AKIAEXAMPLEKEY0001',
      secret_access_key: 'example-secret-value',
      retry: { max_attempts: 2, base_delay_ms: 1, max_delay_ms: 1 },
      circuit_breaker: { failure_threshold: 2, recovery_timeout_ms: 60_000 },
    });
    store = (await createObjectStore({ s3 }, { onCircuitChange: (c) => changes.push(c) })) as CircuitBreakerObjectStore;
    const codes: string[] = [];
    for (let i = 0; i < 5; i++) codes.push(await store.get(`k${i}`).then(() => 'ok', (e: AuditlogError) => e.code));
    expect(codes).toEqual(['STORAGE_UNREACHABLE', 'STORAGE_CIRCUIT_OPEN', 'STORAGE_CIRCUIT_OPEN', 'STORAGE_CIRCUIT_OPEN', 'STORAGE_CIRCUIT_OPEN']);
    // Two operations of two attempts each; nothing after the circuit opened.
    expect(fault.requests).toHaveLength(4);
    expect(changes.map((c) => c.to)).toEqual(['OPEN']);
    const refused = (await store.check().catch((e: unknown) => e)) as AuditlogError;
    expect(refused.message).toContain(`against s3://fault-bucket/ (${fault.endpoint})`);
  });

  it('paces every local request attempt at local.rate_limit_requests_per_second', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-rate-'));
    try {
      const local = await createObjectStore({ local: localSchema.parse({ path: dir, rate_limit_requests_per_second: 20 }) });
      const started = performance.now();
      // 12 requests at 20/s with a burst of 2: the last one goes out no sooner than 0.5 s after the first.
      for (let i = 0; i < 12; i++) await local.put(`k${i}`, Buffer.from('x'));
      expect(performance.now() - started).toBeGreaterThanOrEqual(480);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
