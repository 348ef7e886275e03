// Runs s3rver in its own process for test/helpers/s3-server.ts. It needs
// --openssl-legacy-provider: s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with DES,
// which OpenSSL 3 (Node >= 17) refuses, so every truncated listing would answer 500.
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import S3rver from 's3rver';
import S3Object from 's3rver/lib/models/object.js';

const [directory, bucket] = process.argv.slice(2);
const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory, configureBuckets: [{ name: bucket }] });
// s3rver's DeleteObject removes parent directories that became empty; a PUT into the same
// directory at that moment fails with ENOENT *and crashes the server* (an unhandled stream
// error). S3 has no directories, so deleting just the object's files is the faithful behaviour.
// s3rver streams a PUT straight into the object's file: a client killed mid-upload leaves a
// truncated object behind (and an overwrite truncates the old one first). S3 stores a PUT
// atomically or not at all, which is what the crash tests must run against: buffer the body (an
// aborted request errors the stream, so nothing is written), write a temp file and rename it.
server.store.putObject = async (object) => {
  const objectPath = server.store.getResourcePath(object.bucket, object.key, 'object');
  const chunks = [];
  if (Buffer.isBuffer(object.content)) chunks.push(object.content);
  else for await (const chunk of object.content) chunks.push(chunk);
  const body = Buffer.concat(chunks);
  const md5 = createHash('md5').update(body).digest('hex');
  await mkdir(path.dirname(objectPath), { recursive: true });
  const temp = `${objectPath}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  await writeFile(temp, body);
  await rename(temp, objectPath);
  await server.store.putMetadata(object.bucket, object.key, object.metadata, md5);
  return { size: body.length, md5 };
};
server.store.deleteObject = async (bucketName, key) => {
  await Promise.all(
    ['object', 'object.md5', 'metadata.json'].map((kind) =>
      unlink(server.store.getResourcePath(bucketName, key, kind)).catch((error) => {
        if (error.code !== 'ENOENT') throw error;
      }),
    ),
  );
};
server.on('event', (event) => {
  for (const record of event.Records) {
    const { key, size } = record.s3.object;
    process.send?.({ type: 'event', eventName: record.eventName, key, size });
  }
});
// s3rver 3.7.1 stores multipart uploads (uploads/<id>/{key,metadata,<n>,<n>.md5}) but does not
// implement ListMultipartUploads, ListParts or AbortMultipartUpload, and accepts parts for an
// upload that does not exist. This middleware answers those as S3 does, from s3rver's own upload
// store, so resume and cleanup run against the same server the parts went to. A part's ETag is
// its MD5 (as on S3 without SSE-KMS); part checksums are not kept, as s3rver never kept them.
const uploadsDirectory = () => server.store.getResourcePath(bucket, undefined, 'uploads');
const xmlEscape = (text) => String(text).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
const xmlAnswer = (ctx, status, body) => {
  ctx.status = status;
  ctx.type = 'application/xml';
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n${body}`;
};
const noSuchUpload = (ctx) =>
  xmlAnswer(ctx, 404, '<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist.</Message><RequestId>s3rver-child</RequestId></Error>');

async function readUpload(uploadId) {
  if (!/^[A-Za-z0-9_-]+$/.test(uploadId)) return undefined;
  const directory = path.join(uploadsDirectory(), uploadId);
  try {
    const [key, info] = await Promise.all([readFile(path.join(directory, 'key'), 'utf8'), stat(path.join(directory, 'key'))]);
    return { uploadId, key, initiated: info.mtime, directory };
  } catch (error) {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  }
}

async function listUploads(ctx, query) {
  const ids = await readdir(uploadsDirectory()).catch((error) => (error.code === 'ENOENT' ? [] : Promise.reject(error)));
  const prefix = query.get('prefix') ?? '';
  const keyMarker = query.get('key-marker') ?? '';
  const idMarker = query.get('upload-id-marker') ?? '';
  const max = Math.min(1000, Number(query.get('max-uploads') ?? 1000));
  const all = (await Promise.all(ids.map(readUpload)))
    .filter((u) => u !== undefined && u.key.startsWith(prefix))
    .filter((u) => keyMarker === '' || u.key > keyMarker || (u.key === keyMarker && idMarker !== '' && u.uploadId > idMarker))
    .sort((a, b) => (a.key === b.key ? (a.uploadId < b.uploadId ? -1 : 1) : a.key < b.key ? -1 : 1));
  const page = all.slice(0, max);
  const truncated = all.length > page.length;
  const last = page.at(-1);
  xmlAnswer(
    ctx,
    200,
    `<ListMultipartUploadsResult><Bucket>${xmlEscape(bucket)}</Bucket><KeyMarker>${xmlEscape(keyMarker)}</KeyMarker><UploadIdMarker>${xmlEscape(idMarker)}</UploadIdMarker>` +
      (truncated ? `<NextKeyMarker>${xmlEscape(last.key)}</NextKeyMarker><NextUploadIdMarker>${xmlEscape(last.uploadId)}</NextUploadIdMarker>` : '') +
      `<Prefix>${xmlEscape(prefix)}</Prefix><MaxUploads>${max}</MaxUploads><IsTruncated>${truncated}</IsTruncated>` +
      page.map((u) => `<Upload><Key>${xmlEscape(u.key)}</Key><UploadId>${u.uploadId}</UploadId><Initiated>${u.initiated.toISOString()}</Initiated><StorageClass>STANDARD</StorageClass></Upload>`).join('') +
      '</ListMultipartUploadsResult>',
  );
}

async function listParts(ctx, upload, query) {
  const marker = Number(query.get('part-number-marker') ?? 0);
  const max = Math.min(1000, Number(query.get('max-parts') ?? 1000));
  const numbers = (await readdir(upload.directory)).filter((name) => /^\d+$/.test(name)).map(Number).filter((n) => n > marker).sort((a, b) => a - b);
  const page = numbers.slice(0, max);
  const truncated = numbers.length > page.length;
  const parts = await Promise.all(
    page.map(async (n) => {
      const file = path.join(upload.directory, String(n));
      // s3rver writes a part's .md5 once its body has fully arrived: a part whose upload was cut
      // off (the client killed mid-body) has none, and S3 never lists such a part.
      const md5 = await readFile(`${file}.md5`, 'utf8').catch((error) => (error.code === 'ENOENT' ? undefined : Promise.reject(error)));
      if (md5 === undefined) return '';
      const info = await stat(file);
      return `<Part><PartNumber>${n}</PartNumber><LastModified>${info.mtime.toISOString()}</LastModified><ETag>"${md5}"</ETag><Size>${info.size}</Size></Part>`;
    }),
  );
  xmlAnswer(
    ctx,
    200,
    `<ListPartsResult><Bucket>${xmlEscape(bucket)}</Bucket><Key>${xmlEscape(upload.key)}</Key><UploadId>${upload.uploadId}</UploadId><PartNumberMarker>${marker}</PartNumberMarker>` +
      (truncated ? `<NextPartNumberMarker>${page.at(-1)}</NextPartNumberMarker>` : '') +
      `<MaxParts>${max}</MaxParts><IsTruncated>${truncated}</IsTruncated>${parts.join('')}</ListPartsResult>`,
  );
}

server.middleware.unshift(async (ctx, next) => {
  const url = new URL(ctx.url, 'http://s3rver.invalid');
  const [first, ...rest] = url.pathname.slice(1).split('/');
  if (decodeURIComponent(first ?? '') !== bucket) return next();
  const key = rest.map(decodeURIComponent).join('/');
  const query = url.searchParams;
  if (key === '' && ctx.method === 'GET' && query.has('uploads')) return listUploads(ctx, query);
  const uploadId = query.get('uploadId');
  if (key === '' || uploadId === null) return next();
  const upload = await readUpload(uploadId);
  if (upload === undefined || upload.key !== key) return noSuchUpload(ctx);
  if (ctx.method === 'GET') return listParts(ctx, upload, query);
  if (ctx.method === 'DELETE') {
    await rm(upload.directory, { recursive: true, force: true });
    ctx.status = 204;
    return undefined;
  }
  return next();
});

const address = await server.run();
process.send?.({ type: 'ready', port: address.port });
process.on('message', async (message) => {
  if (message?.type === 'seed') {
    // Straight into s3rver's store: ~20x faster than PUTs through HTTP, for tests that need many objects.
    const queue = [...message.objects];
    const worker = async () => {
      for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
        await server.store.putObject(new S3Object(bucket, next.key, Buffer.from(next.body, 'base64'), {}));
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    process.send?.({ type: 'seeded', id: message.id });
    return;
  }
  if (message?.type === 'backdate-uploads') {
    // Makes every incomplete upload look `hours` older: S3 never lets a client set Initiated.
    const ids = await readdir(uploadsDirectory()).catch(() => []);
    const when = new Date(Date.now() - message.hours * 3_600_000);
    await Promise.all(ids.map((id) => utimes(path.join(uploadsDirectory(), id, 'key'), when, when).catch(() => undefined)));
    process.send?.({ type: 'seeded', id: message.id });
    return;
  }
  if (message === 'stop') {
    server.httpServer?.closeAllConnections();
    await server.close();
    process.exit(0);
  }
});
// The test process died or let go of us: do not outlive it.
process.on('disconnect', () => process.exit(0));
