/**
 * A minimal HTTP server for `/metrics` and `/health`: GET only, one handler per path, 404
 * otherwise. Binding fails with a one-line error naming the config key to change: the port, or
 * `listen_host` when the address is the problem.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AuditlogError, describeError } from '../core/errors.js';

export interface RouteResponse {
  status: number;
  contentType: string;
  body: string;
}

export type Route = () => Promise<RouteResponse>;

export interface RunningServer {
  /** The port bound (the one asked for, or the one chosen for port 0). */
  readonly port: number;
  close(): Promise<void>;
}

export async function serveRoutes(options: { host: string; port: number; routes: Record<string, Route>; portKey: string }): Promise<RunningServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const route = options.routes[path];
    if (req.method !== 'GET' || route === undefined) {
      res.writeHead(req.method === 'GET' ? 404 : 405, { 'content-type': 'text/plain' }).end(req.method === 'GET' ? 'not found\n' : 'method not allowed\n');
      return;
    }
    route().then(
      (r) => res.writeHead(r.status, { 'content-type': r.contentType }).end(r.body),
      (error: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${describeError(error)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new AuditlogError('USAGE', `cannot listen on ${options.host}:${options.port} for ${Object.keys(options.routes).join(', ')}: ${error.code ?? describeError(error)} (${listenHint(error.code, options.portKey)})`, {
          cause: error,
        }),
      );
    });
    server.listen(options.port, options.host, () => resolve());
  });
  // A scraper's keep-alive connection must not hold the process open at shutdown.
  server.keepAliveTimeout = 1_000;
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** What to change for a failed listen: the port when it is taken or privileged, `listen_host` when the address is not this machine's. */
function listenHint(code: string | undefined, portKey: string): string {
  switch (code) {
    case 'EADDRINUSE':
      return `choose another monitoring.${portKey}, or stop what uses it`;
    case 'EACCES':
      return `choose a monitoring.${portKey} above 1023, or run with the privilege to bind it`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EADDRNOTAVAIL':
      return 'monitoring.listen_host must be an address of this machine (0.0.0.0 for all, 127.0.0.1 for local only)';
    default:
      return `check monitoring.listen_host and monitoring.${portKey}`;
  }
}
