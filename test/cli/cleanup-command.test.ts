/**
 * `auditlog cleanup` through the real CLI: orphaned multipart uploads on an S3-compatible server
 * (their age set back with the test server's backdating, since S3 never lets a client set it),
 * and temp files of interrupted writes in a local directory.
 */
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateMultipartUploadCommand, HeadObjectCommand, ListMultipartUploadsCommand, S3Client, UploadPartCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCAL_TEMP_SUFFIX } from '../../src/storage/local-object-store.js';
import { runCli } from '../helpers/run-cli.js';
import { startS3Server, type S3TestServer } from '../helpers/s3-server.js';

let s3: S3TestServer;
let raw: S3Client;
let dir: string;

beforeAll(async () => {
  s3 = await startS3Server();
  raw = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  dir = await mkdtemp(join(tmpdir(), 'cleanup-cli-'));
});

afterAll(async () => {
  raw.destroy();
  await s3?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function writeConfig(name: string, storage: Record<string, unknown>): Promise<string> {
  const file = join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify({ ...storage, databases: [{ name: 'app', url: 'postgres://unused@127.0.0.1/x', tables: [{ name: 't', timestamp_column: 'ts' }] }] }));
  return file;
}

async function startUpload(key: string): Promise<string> {
  const created = await raw.send(new CreateMultipartUploadCommand({ Bucket: s3.bucket, Key: key }));
  await raw.send(new UploadPartCommand({ Bucket: s3.bucket, Key: key, UploadId: created.UploadId!, PartNumber: 1, Body: Buffer.from('part one') }));
  return created.UploadId!;
}

async function uploadIds(prefix: string): Promise<string[]> {
  const out = await raw.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: prefix }));
  return (out.Uploads ?? []).map((u) => u.UploadId!).sort();
}

describe('auditlog cleanup', () => {
  it('has --help', async () => {
    const result = await runCli(['cleanup', '--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('--older-than-hours');
    expect(result.stdout).toContain('--dry-run');
  });

  it('refuses an age under one hour (an upload still in progress could be cut) with exit 2', async () => {
    const file = await writeConfig('young', { s3: s3.s3Config({ prefix: 'young/' }) });
    const result = await runCli(['cleanup', '--config', file, '--older-than-hours', '0.5']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('--older-than-hours');
    expect(result.stderr).toContain('[USAGE]');
    // Decimal hours only: "0x10" was read as 16 (found by probing).
    const hex = await runCli(['cleanup', '--config', file, '--older-than-hours', '0x10']);
    expect(hex.code).toBe(2);
    expect(hex.stderr).toContain('--older-than-hours expects a number of hours of at least 1 (younger uploads may still be in progress), got "0x10"');
  });

  it('lists orphaned uploads with --dry-run, aborts them without it, and leaves objects and young or foreign uploads alone', async () => {
    const prefix = 'cli-s3/';
    const orphanKey = `${prefix}app/public.t/year=2025/month=01/day=02/000000000000-abc.jsonl.gz`;
    const orphan = await startUpload(orphanKey);
    const foreign = await startUpload(`${prefix}someone-else/backup.tar`);
    await s3.seedObjects([{ key: `${prefix}app/public.t/year=2025/month=01/day=02/000000000000-old.jsonl.gz`, body: Buffer.from('committed') }]);
    await s3.backdateUploads(3);
    const young = await startUpload(`${prefix}app/public.t/year=2025/month=01/day=03/000000000000-new.jsonl.gz`);
    const file = await writeConfig('s3', { s3: s3.s3Config({ prefix }) });

    const dry = await runCli(['cleanup', '--config', file, '--dry-run', '--json', '--older-than-hours', '2']);
    expect(dry.code, dry.stderr).toBe(0);
    const report = JSON.parse(dry.stdout) as { dryRun: boolean; olderThanHours: number; items: Array<{ kind: string; key: string; uploadId: string; action: string }>; kept: number };
    expect(report).toMatchObject({ dryRun: true, olderThanHours: 2, kept: 2 });
    expect(report.items).toEqual([expect.objectContaining({ kind: 'multipart-upload', key: orphanKey.slice(prefix.length), uploadId: orphan, action: 'would-abort' })]);
    expect(await uploadIds(prefix)).toEqual([orphan, foreign, young].sort());

    const done = await runCli(['cleanup', '--config', file, '--older-than-hours', '2']);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(`aborted      multipart upload ${orphanKey.slice(prefix.length)} (upload ${orphan}`);
    expect(done.stdout).toContain('1 upload(s) aborted');
    expect(await uploadIds(prefix)).toEqual([foreign, young].sort());
    const committed = await raw.send(new HeadObjectCommand({ Bucket: s3.bucket, Key: `${prefix}app/public.t/year=2025/month=01/day=02/000000000000-old.jsonl.gz` }));
    expect(committed.ContentLength).toBe('committed'.length);
    // Default age (s3.multipart_orphan_age_hours, 24 h): nothing is old enough.
    const byDefault = await runCli(['cleanup', '--config', file]);
    expect(byDefault.code).toBe(0);
    expect(byDefault.stdout).toContain('0 upload(s) aborted');
    expect((await raw.send(new ListMultipartUploadsCommand({ Bucket: s3.bucket, Prefix: prefix }))).Uploads?.length).toBe(2);
  });

  it('removes old temp files of interrupted local writes, never objects or young temp files', async () => {
    const root = join(dir, 'local-archive');
    const day = join(root, 'app', 'public.t', 'year=2025', 'month=01', 'day=02');
    await mkdir(day, { recursive: true });
    await writeFile(join(day, 'x.jsonl.gz'), 'object');
    const oldTemp = join(day, `.x.jsonl.gz.123-abcdef${LOCAL_TEMP_SUFFIX}`);
    const youngTemp = join(day, `.y.jsonl.gz.456-abcdef${LOCAL_TEMP_SUFFIX}`);
    await writeFile(oldTemp, 'half');
    await writeFile(youngTemp, 'in progress');
    const twoDaysAgo = new Date(Date.now() - 48 * 3_600_000);
    await utimes(oldTemp, twoDaysAgo, twoDaysAgo);
    const file = await writeConfig('local', { local: { path: root } });

    const dry = await runCli(['cleanup', '--config', file, '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain('would delete temp file app/public.t/year=2025/month=01/day=02/.x.jsonl.gz.123-abcdef.auditlog-tmp');
    expect((await readdir(day)).sort()).toHaveLength(3);

    const done = await runCli(['cleanup', '--config', file]);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain('1 file(s) deleted');
    expect((await readdir(day)).sort()).toEqual([`.y.jsonl.gz.456-abcdef${LOCAL_TEMP_SUFFIX}`, 'x.jsonl.gz']);
  });
});
