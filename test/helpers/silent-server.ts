/**
 * A TCP server that accepts connections and never answers: a database or storage endpoint that
 * hangs. It reads (and drops) what arrives, so a client that closes its end is seen to; `held`
 * lists every connection it accepted, for tests that count what a check left open.
 */
import { createServer, type AddressInfo, type Socket } from 'node:net';

export interface SilentServer {
  port: number;
  held: Socket[];
  stop(): Promise<void>;
}

export async function startSilentServer(): Promise<SilentServer> {
  const held: Socket[] = [];
  const server = createServer((socket) => {
    held.push(socket);
    socket.on('error', () => undefined);
    socket.resume();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    held,
    stop: async () => {
      held.forEach((s) => s.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
