/**
 * An S3-compatible server (s3rver) for tests: loopback, a free port, a fresh directory and one
 * bucket per call. s3rver accepts any SigV4 signature but knows exactly one access key id,
 * `S3RVER`; the secret is not checked, so tests may pick any secret to prove it never leaks.
 *
 * s3rver lacks ListMultipartUploads, ListParts and AbortMultipartUpload; s3rver-child.mjs answers
 * them from s3rver's own upload store (see there).
 *
 * s3rver runs in a child process started with --openssl-legacy-provider (see s3rver-child.mjs:
 * its ListObjectsV2 pagination needs DES); that also keeps its CPU off the test's event loop.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { s3Schema, type S3Config } from '../../src/config/schema.js';

export const S3RVER_ACCESS_KEY_ID = 'S3RVER';

export interface S3ServerEvent {
  /** `ObjectCreated:Put` for a PutObject, `ObjectCreated:Post` for a completed multipart upload, `ObjectRemoved:Delete`. */
  eventName: string;
  key: string;
  size?: number;
}

export interface S3TestServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  bucket: string;
  /** A complete S3Config (schema defaults applied) pointing at this server. */
  s3Config(overrides?: Partial<S3Config>): S3Config;
  /** Objects the server created or removed, in order. They arrive over IPC: poll (vi.waitFor) rather than read once. */
  events: S3ServerEvent[];
  /** Writes objects (full keys, prefix included) straight into s3rver's store, bypassing HTTP: for tests that need many objects fast. */
  seedObjects(objects: Array<{ key: string; body: Buffer }>): Promise<void>;
  /** Makes every incomplete multipart upload look `hours` older (its Initiated time), for cleanup tests. */
  backdateUploads(hours: number): Promise<void>;
  stop(): Promise<void>;
}

type ChildMessage = { type: 'ready'; port: number } | { type: 'seeded'; id: number } | ({ type: 'event' } & S3ServerEvent);

const CHILD_SCRIPT = fileURLToPath(new URL('./s3rver-child.mjs', import.meta.url));

export async function startS3Server(options: { bucket?: string } = {}): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(tmpdir(), 'auditlog-s3rver-'));
  const bucket = options.bucket ?? 'test-bucket';
  const events: S3ServerEvent[] = [];
  const seeding = new Map<number, () => void>();
  let nextSeedId = 0;
  const child: ChildProcess = fork(CHILD_SCRIPT, [directory, bucket], {
    execArgv: ['--openssl-legacy-provider'],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`s3rver did not start within 15 s: ${stderr}`)), 15_000);
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'ready') {
        clearTimeout(timer);
        resolve(message.port);
      } else if (message.type === 'seeded') {
        seeding.get(message.id)?.();
        seeding.delete(message.id);
      } else {
        const { type: _type, ...event } = message;
        events.push(event);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`s3rver exited with code ${code}: ${stderr}`));
    });
  });
  const endpoint = `http://127.0.0.1:${port}`;
  return {
    endpoint,
    bucket,
    events,
    s3Config: (overrides = {}) => ({
      ...s3Schema.parse({
        bucket,
        endpoint,
        region: 'us-east-1',
        force_path_style: true,
        access_key_id: S3RVER_ACCESS_KEY_ID,
        secret_access_key: 'S3RVER',
      }),
      ...overrides,
    }),
    seedObjects: (objects) => {
      nextSeedId += 1;
      const id = nextSeedId;
      return new Promise<void>((resolve) => {
        seeding.set(id, resolve);
        child.send({ type: 'seed', id, objects: objects.map(({ key, body }) => ({ key, body: body.toString('base64') })) });
      });
    },
    backdateUploads: (hours) => {
      nextSeedId += 1;
      const id = nextSeedId;
      return new Promise<void>((resolve) => {
        seeding.set(id, resolve);
        child.send({ type: 'backdate-uploads', id, hours });
      });
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        child.send('stop');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
      await rm(directory, { recursive: true, force: true });
    },
  };
}
