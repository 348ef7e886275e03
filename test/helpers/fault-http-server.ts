/**
 * A scripted fake S3 for unit-level tests: every incoming request takes the next step of a
 * queue (an exact status/headers/XML answer, a socket destroyed mid-body, a stall) and is
 * recorded, so tests can assert both what the client saw and how many requests it made.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export type ScriptedStep =
  /** A complete answer. */
  | { kind: 'respond'; status: number; headers?: Record<string, string>; body?: string | Buffer }
  /** Headers announcing `body.length` bytes, the first `sendBytes` of them, then a destroyed socket. */
  | { kind: 'destroy-mid-body'; status?: number; headers?: Record<string, string>; body: Buffer; sendBytes: number }
  /** Destroys the socket before any response byte (a connection reset as the client sees it). */
  | { kind: 'reset' }
  /** Never answers; the client's timeout must fire. The socket is closed at stop(). */
  | { kind: 'stall' };

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}

export interface FaultHttpServer {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  /** Every request received, in arrival order. */
  requests: RecordedRequest[];
  /** Appends steps to the script. */
  enqueue(...steps: ScriptedStep[]): void;
  /** Steps not consumed yet. */
  pending(): number;
  stop(): Promise<void>;
}

export interface FaultHttpServerOptions {
  /** Answer once the script is used up; default a 500 that names the unexpected request. */
  fallback?: ScriptedStep;
}

/** An S3-style XML error body. */
export function formatS3ErrorXml(code: string, message: string, extra: Record<string, string> = {}): string {
  const fields = Object.entries(extra)
    .map(([name, value]) => `<${name}>${value}</${name}>`)
    .join('');
  return `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message>${fields}<RequestId>fault-1</RequestId></Error>`;
}

/** A scripted S3 error answer. */
export function respondWithS3Error(status: number, code: string, headers: Record<string, string> = {}): ScriptedStep {
  return { kind: 'respond', status, headers: { 'content-type': 'application/xml', ...headers }, body: formatS3ErrorXml(code, `scripted ${code}`) };
}

export async function startFaultHttpServer(options: FaultHttpServerOptions = {}): Promise<FaultHttpServer> {
  const script: ScriptedStep[] = [];
  const requests: RecordedRequest[] = [];
  const sockets = new Set<Socket>();

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks) });
      const step = script.shift() ?? options.fallback ?? respondWithS3Error(500, 'UnscriptedRequest');
      switch (step.kind) {
        case 'respond': {
          const body = step.body === undefined ? Buffer.alloc(0) : Buffer.from(step.body);
          res.writeHead(step.status, { 'content-length': String(body.length), ...step.headers });
          res.end(req.method === 'HEAD' ? undefined : body);
          return;
        }
        case 'destroy-mid-body': {
          res.writeHead(step.status ?? 200, { 'content-length': String(step.body.length), ...step.headers });
          res.write(step.body.subarray(0, step.sendBytes), () => {
            // Let the partial body reach the client before the connection drops.
            setTimeout(() => req.socket.destroy(), 10);
          });
          return;
        }
        case 'reset':
          req.socket.destroy();
          return;
        case 'stall':
          return;
      }
    });
  });
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    enqueue: (...steps) => {
      script.push(...steps);
    },
    pending: () => script.length,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
