/**
 * A TCP fault proxy in front of PostgreSQL: forwards bytes both ways, and on command resets every
 * open connection (the archiver sees ECONNRESET, the server sees its client vanish), refuses new
 * ones, or lets requests through while discarding the server's answers (a COMMIT that commits
 * without the client ever hearing so). The database is never told: what it sees is what a network failure looks like.
 * With `dropStartupOptions`, new connections lose the startup message's `options` parameter on
 * the way, as behind PgBouncer with ignore_startup_parameters = options.
 */
import net from 'node:net';

/** What a new connection gets: forwarded, reset at once, or accepted and never answered. */
export type NewConnectionMode = 'pass' | 'refuse' | 'blackhole';

export interface TcpFaultProxy {
  port: number;
  mode: NewConnectionMode;
  /** New connections from now on reach the server without the startup `options` parameter. */
  dropStartupOptions: boolean;
  /** Connections accepted so far, whatever happened to them. */
  readonly accepted: number;
  /** Connections open now. */
  open(): number;
  /** Resets every open connection; returns how many there were. */
  dropAll(): number;
  /** From now on, bytes from the server on the connections open now are dropped; the client's still arrive. */
  muteReplies(): void;
  /**
   * From now on nothing is forwarded either way on the connections open now, and nothing is read
   * from either side (not even a FIN), while every socket stays open; new connections are accepted
   * and never answered (mode 'blackhole'). A frozen peer or a stalled network path: the client's
   * kernel gets ACKs, TCP keepalive sees nothing wrong. dropAll() and mode 'pass' end it.
   */
  blackhole(): void;
  /** The same database URL, through the proxy. */
  urlFor(databaseUrl: string): string;
  stop(): Promise<void>;
}

interface Pair {
  client: net.Socket;
  upstream?: net.Socket;
}

export async function startTcpFaultProxy(target: { host: string; port: number }): Promise<TcpFaultProxy> {
  const pairs = new Set<Pair>();
  let accepted = 0;
  const server = net.createServer((client) => {
    accepted++;
    // The pair's sockets fail together; an error on either is the fault we injected or its echo.
    client.on('error', () => undefined);
    if (proxy.mode === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    const pair: Pair = { client };
    pairs.add(pair);
    client.on('close', () => {
      pair.upstream?.destroy();
      pairs.delete(pair);
    });
    if (proxy.mode === 'blackhole') {
      client.pause();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    pair.upstream = upstream;
    upstream.on('error', () => client.destroy());
    upstream.on('close', () => client.destroy());
    upstream.pipe(client);
    if (!proxy.dropStartupOptions) {
      client.pipe(upstream);
      return;
    }
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      if (head.length < 4 || head.length < head.readInt32BE(0)) return;
      client.off('data', onData);
      const length = head.readInt32BE(0);
      upstream.write(withoutStartupOptions(head.subarray(0, length)));
      if (head.length > length) upstream.write(head.subarray(length));
      client.pipe(upstream);
    };
    client.on('data', onData);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const proxy: TcpFaultProxy = {
    port,
    mode: 'pass',
    dropStartupOptions: false,
    get accepted() {
      return accepted;
    },
    open: () => pairs.size,
    dropAll: () => {
      const n = pairs.size;
      for (const p of [...pairs]) {
        p.client.resetAndDestroy();
        p.upstream?.resetAndDestroy();
      }
      return n;
    },
    muteReplies: () => {
      for (const p of pairs) {
        if (p.upstream === undefined) continue;
        p.upstream.unpipe(p.client);
        // Keep reading, so the server is never blocked on a full socket: the answers just go nowhere.
        p.upstream.on('data', () => undefined);
      }
    },
    blackhole: () => {
      proxy.mode = 'blackhole';
      for (const p of pairs) {
        p.client.unpipe();
        p.upstream?.unpipe();
        p.client.pause();
        p.upstream?.pause();
      }
    },
    urlFor: (databaseUrl) => {
      const u = new URL(databaseUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    stop: async () => {
      proxy.dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  return proxy;
}

/** The startup message (length, protocol 3.0, then name/value pairs) without its `options` pair. */
function withoutStartupOptions(message: Buffer): Buffer {
  const fields = message.subarray(8, message.length - 1).toString('utf8').split('\0');
  const kept: string[] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] !== 'options') kept.push(fields[i]!, fields[i + 1]!);
  const body = Buffer.from(kept.map((f) => `${f}\0`).join('') + '\0', 'utf8');
  const out = Buffer.alloc(8 + body.length);
  out.writeInt32BE(out.length, 0);
  message.copy(out, 4, 4, 8);
  body.copy(out, 8);
  return out;
}
