/**
 * The two storage backends a test can run through, each made fresh per test: a local directory
 * (removed afterwards) and a new prefix on the file's S3-compatible server.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalObjectStore } from '../../src/storage/local-object-store.js';
import { S3ObjectStore } from '../../src/storage/s3-object-store.js';
import type { ObjectStore } from '../../src/storage/object-store.js';
import type { S3TestServer } from './s3-server.js';

export interface StorageBackend {
  name: string;
  make(): Promise<{ store: ObjectStore; storage: Record<string, unknown>; cleanup(): Promise<void> }>;
}

/** `s3` is read when a backend is made, so the server may be started in a beforeAll. */
export function storageBackends(s3: () => S3TestServer, prefix: string): StorageBackend[] {
  return [
    {
      name: 'local directory',
      async make() {
        const dir = await mkdtemp(join(tmpdir(), `${prefix}-`));
        return { store: new LocalObjectStore({ path: dir }), storage: { local: { path: dir } }, cleanup: () => rm(dir, { recursive: true, force: true }) };
      },
    },
    {
      name: 'S3-compatible server',
      async make() {
        const cfg = s3().s3Config({ prefix: `${prefix}-${Date.now()}/` });
        return { store: new S3ObjectStore(cfg), storage: { s3: cfg }, cleanup: async () => undefined };
      },
    },
  ];
}
