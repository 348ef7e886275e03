/** The listen error of the /metrics and /health servers names the key to change for the error it is. */
import { afterEach, describe, expect, it } from 'vitest';
import { serveRoutes, type RunningServer } from '../../src/monitoring/serve-routes.js';

const routes = { '/metrics': async () => ({ status: 200, contentType: 'text/plain', body: '' }) };
let running: RunningServer | undefined;
afterEach(async () => {
  await running?.close();
  running = undefined;
});

async function listenError(host: string, port: number): Promise<string> {
  try {
    running = await serveRoutes({ host, port, routes, portKey: 'metrics_port' });
  } catch (error) {
    expect(error).toMatchObject({ code: 'USAGE' });
    return (error as Error).message;
  }
  throw new Error('expected the listen to fail');
}

describe('serveRoutes: the hint matches the listen error', () => {
  it('EADDRINUSE: choose another port', async () => {
    running = await serveRoutes({ host: '127.0.0.1', port: 0, routes, portKey: 'metrics_port' });
    const taken = running.port;
    const message = await serveRoutes({ host: '127.0.0.1', port: taken, routes, portKey: 'metrics_port' }).then(
      () => '',
      (error: Error) => error.message,
    );
    expect(message).toBe(`cannot listen on 127.0.0.1:${taken} for /metrics: EADDRINUSE (choose another monitoring.metrics_port, or stop what uses it)`);
  });

  it('ENOTFOUND (a host name that does not resolve): fix listen_host, not the port', async () => {
    const message = await listenError('no-such-host.invalid', 0);
    expect(message).toMatch(/^cannot listen on no-such-host\.invalid:0 for \/metrics: (ENOTFOUND|EAI_AGAIN) \(monitoring\.listen_host must be an address of this machine/);
    expect(message).not.toContain('metrics_port');
  });

  it('EADDRNOTAVAIL (an address of another machine): fix listen_host, not the port', async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never an address of this machine.
    const message = await listenError('192.0.2.1', 0);
    expect(message).toBe('cannot listen on 192.0.2.1:0 for /metrics: EADDRNOTAVAIL (monitoring.listen_host must be an address of this machine (0.0.0.0 for all, 127.0.0.1 for local only))');
  });
});
