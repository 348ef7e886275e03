// Runs s3rver in its own process for test/helpers/s3-server.ts. It needs
// --openssl-legacy-provider: s3rver 3.7.1 encrypts ListObjectsV2 continuation tokens with DES,
// which OpenSSL 3 (Node >= 17) refuses, so every truncated listing would answer 500.
import { createHash } from 'node:crypto';
import { mkdir, rename, unlink, writeFile } from 'node:fs/promises';
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
  if (message === 'stop') {
    server.httpServer?.closeAllConnections();
    await server.close();
    process.exit(0);
  }
});
// The test process died or let go of us: do not outlive it.
process.on('disconnect', () => process.exit(0));
