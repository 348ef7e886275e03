/**
 * An HTTP fault proxy in front of the S3-compatible server: every request is forwarded unless the
 * current rule says to answer 503 SlowDown / 500, to reset the connection, to hold the request
 * forever (`stall`: the client's timeout must fire, or the test kills the client meanwhile), or to
 * forward it and drop the connection once the server has answered, after half the response body
 * if there is one (`reset-mid-response`: a PUT is then stored though the client saw a reset), or to
 * forward it with one byte of its body flipped (`corrupt-request-body`: damage in transit, which
 * s3rver, unlike S3, stores without checking the request's x-amz-checksum-sha256), or to forward
 * it and answer with an ETag that is not the body's MD5 (`foreign-etag`: as S3 answers for an
 * object encrypted with SSE-KMS, where the ETag is no digest of the bytes), or to keep the request
 * unanswered and deliver it to the server only when the test calls `deliverHeld()` (`hold`: a
 * request the client gave up on and retried lands after its retry, as a slow storage node or a
 * buffering gateway may complete it). Rules see the
 * method and path and a per-method counter, so tests can fail "every 3rd PUT" or "all PUTs from now on".
 *
 * With `emulateConditionalCreate`, the proxy also EMULATES a server feature s3rver lacks (s3rver
 * ignores If-None-Match on writes and stores the object anyway): a PUT or POST (PutObject,
 * CompleteMultipartUpload) carrying `If-None-Match: *` that the rule lets pass, or that
 * `deliverHeld()` delivers, is preceded by a HEAD of its key upstream and answered 412
 * PreconditionFailed with an S3 XML error body when an object is there, as AWS S3, MinIO and R2
 * answer; otherwise it is forwarded. The HEAD and the write are two requests, not one atomic step:
 * good enough for tests that do not race two writers on one key.
 */
import { createServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export type FaultAction = 'pass' | 'reset' | 'stall' | 'hold' | 'reset-mid-response' | 'corrupt-request-body' | 'foreign-etag' | { status: number; code: string };

export interface RequestInfo {
  method: string;
  path: string;
  /** 1-based count of requests with this method so far, this one included. */
  nth: number;
}

export interface FaultProxyOptions {
  /** Emulate `If-None-Match: *` on writes (see the module comment). */
  emulateConditionalCreate?: boolean;
}

export interface FaultProxy {
  endpoint: string;
  rule: (req: RequestInfo) => FaultAction;
  injected: number;
  /** Paths of the writes answered 412 by the conditional-create emulation, in order. */
  refusedCreates: string[];
  /** Sends the requests `hold` kept to the server, in arrival order; the server's status codes. */
  deliverHeld(): Promise<number[]>;
  stop(): Promise<void>;
}

interface HeldRequest {
  method: string;
  path: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

const PRECONDITION_FAILED_BODY =
  '<?xml version="1.0" encoding="UTF-8"?><Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition></Error>';

export async function startFaultProxy(target: string, options: FaultProxyOptions = {}): Promise<FaultProxy> {
  const upstream = new URL(target);
  const counts = new Map<string, number>();
  const held: HeldRequest[] = [];
  const isConditionalCreate = (method: string, headers: IncomingHttpHeaders): boolean =>
    options.emulateConditionalCreate === true && (method === 'PUT' || method === 'POST') && headers['if-none-match'] === '*';
  /** HEAD of the write's key upstream, signed like the write (s3rver checks the key id, not the signature). */
  const objectExists = (path: string, headers: IncomingHttpHeaders): Promise<boolean> =>
    new Promise((resolve, reject) => {
      const { 'content-length': _length, 'content-type': _type, 'content-md5': _md5, expect: _expect, 'transfer-encoding': _te, 'if-none-match': _inm, ...rest } = headers;
      const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: 'HEAD', path: path.split('?')[0], headers: rest }, (up) => {
        up.resume();
        up.on('end', () => resolve(up.statusCode === 200));
      });
      out.on('error', reject);
      out.end();
    });
  const send = async (h: HeldRequest): Promise<number> => {
    if (isConditionalCreate(h.method, h.headers) && (await objectExists(h.path, h.headers))) {
      proxy.refusedCreates.push(h.path);
      return 412;
    }
    return new Promise((resolve, reject) => {
      const out = httpRequest({ host: upstream.hostname, port: upstream.port, method: h.method, path: h.path, headers: h.headers }, (up) => {
        up.resume();
        up.on('end', () => resolve(up.statusCode ?? 0));
      });
      out.on('error', reject);
      out.end(h.body);
    });
  };
  const proxy: FaultProxy = {
    endpoint: '',
    rule: () => 'pass',
    injected: 0,
    refusedCreates: [],
    deliverHeld: async () => {
      const statuses: number[] = [];
      for (const h of held.splice(0)) statuses.push(await send(h));
      return statuses;
    },
    stop: async () => undefined,
  };
  const server: Server = createServer((req: IncomingMessage, res) => {
    const method = req.method ?? 'GET';
    const nth = (counts.get(method) ?? 0) + 1;
    counts.set(method, nth);
    const action = proxy.rule({ method, path: req.url ?? '/', nth });
    if (action === 'reset') {
      proxy.injected++;
      req.socket.destroy();
      return;
    }
    if (action === 'stall') {
      // Read and drop the body so the client believes it was sent; stop() closes the socket.
      proxy.injected++;
      req.resume();
      return;
    }
    if (action === 'hold') {
      proxy.injected++;
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => held.push({ method, path: req.url ?? '/', headers: req.headers, body: Buffer.concat(chunks) }));
      return;
    }
    if (action === 'pass' && isConditionalCreate(method, req.headers)) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const path = req.url ?? '/';
        void objectExists(path, req.headers).then(
          (exists) => {
            if (exists) {
              proxy.refusedCreates.push(path);
              res.writeHead(412, { 'content-type': 'application/xml' });
              res.end(PRECONDITION_FAILED_BODY);
              return;
            }
            const out = httpRequest({ host: upstream.hostname, port: upstream.port, method, path, headers: req.headers }, (up) => {
              res.writeHead(up.statusCode ?? 502, up.headers);
              up.pipe(res);
            });
            out.on('error', () => res.destroy());
            out.end(Buffer.concat(chunks));
          },
          () => res.destroy(),
        );
      });
      return;
    }
    if (typeof action === 'object') {
      proxy.injected++;
      req.resume();
      req.on('end', () => {
        res.writeHead(action.status, { 'content-type': 'application/xml' });
        res.end(`<?xml version="1.0" encoding="UTF-8"?><Error><Code>${action.code}</Code><Message>injected by the fault proxy</Message></Error>`);
      });
      return;
    }
    const out = httpRequest(
      { host: upstream.hostname, port: upstream.port, method, path: req.url, headers: req.headers },
      (up) => {
        if (action === 'foreign-etag') {
          proxy.injected++;
          res.writeHead(up.statusCode ?? 502, { ...up.headers, etag: '"0123456789abcdef0123456789abcdef"' });
          up.pipe(res);
          return;
        }
        if (action !== 'reset-mid-response') {
          res.writeHead(up.statusCode ?? 502, up.headers);
          up.pipe(res);
          return;
        }
        proxy.injected++;
        const chunks: Buffer[] = [];
        up.on('data', (c: Buffer) => chunks.push(c));
        up.on('end', () => {
          const body = Buffer.concat(chunks);
          // The server did the work (a PUT is stored); the client sees the connection drop.
          if (body.length < 2) {
            req.socket.destroy();
            return;
          }
          // Headers promised the whole body; half of it, then the connection drops.
          res.writeHead(up.statusCode ?? 502, up.headers);
          res.write(body.subarray(0, Math.floor(body.length / 2)), () => setTimeout(() => req.socket.destroy(), 10));
        });
      },
    );
    out.on('error', () => res.destroy());
    if (action !== 'corrupt-request-body') {
      req.pipe(out);
      return;
    }
    proxy.injected++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      if (body.length > 0) body[body.length >> 1]! ^= 0x01;
      out.end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  proxy.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  proxy.stop = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return proxy;
}
