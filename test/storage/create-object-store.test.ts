import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AuditlogError } from '../../src/core/errors.js';
import { localSchema, s3Schema } from '../../src/config/schema.js';
import { createObjectStore } from '../../src/storage/create-object-store.js';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';

describe('createObjectStore', () => {
  it('builds an S3ObjectStore for `s3:`', () => {
    const store = createObjectStore({ s3: s3Schema.parse({ bucket: 'audit-archive', prefix: 'archives/', access_key_id: 'AKIAEXAMPLEKEY', secret_access_key: 'very-secret-value' }) });
    expect(store).toBeInstanceOf(S3ObjectStore);
    expect(store.description).toBe('s3://audit-archive/archives/');
    (store as S3ObjectStore).destroy();
  });

  it('builds a LocalObjectStore for `local:`', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'auditlog-create-'));
    try {
      const store = createObjectStore({ local: localSchema.parse({ path: dir }) });
      expect(store).toBeInstanceOf(LocalObjectStore);
      await store.put('a/b.txt', Buffer.from('x'));
      expect((await store.get('a/b.txt'))?.toString()).toBe('x');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a config with neither', () => {
    expect(() => createObjectStore({})).toThrow(AuditlogError);
  });
});
