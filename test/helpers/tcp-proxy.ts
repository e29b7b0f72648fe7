// A loopback TCP proxy the test controls, between the service and a real redis-server: it
// forwards bytes both ways until told to cut, and then drops each connection in the middle of
// the next reply it carries — part of the reply delivered, the rest never — as a network
// failure or a proxy restart does.
import { createServer, Socket, type AddressInfo, type Server } from 'node:net';

export interface TcpProxy {
  port: number;
  url: string;
  /** Connections cut so far. */
  readonly cuts: number;
  /**
   * Cuts every connection open now in the middle of the next reply it carries; resolves once
   * at least one was cut (under load, every connection carries replies).
   */
  cutMidReply(): Promise<void>;
  close(): Promise<void>;
}

export async function startTcpProxy(targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<{ client: Socket; upstream: Socket; cutNext: boolean }>();
  let cuts = 0;
  let onCut: (() => void) | undefined;
  const server: Server = createServer((client) => {
    const upstream = new Socket();
    const pair = { client, upstream, cutNext: false };
    pairs.add(pair);
    const drop = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
    upstream.connect(targetPort, '127.0.0.1');
    client.on('data', (d) => upstream.write(d));
    upstream.on('data', (d: Buffer) => {
      if (!pair.cutNext || d.length < 2) {
        client.write(d);
        return;
      }
      // Half a reply, then nothing: the client has a command in flight and a partial answer.
      client.write(d.subarray(0, Math.floor(d.length / 2)), () => {
        cuts++;
        drop();
        onCut?.();
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get cuts() {
      return cuts;
    },
    cutMidReply: () =>
      new Promise<void>((resolve) => {
        const before = cuts;
        onCut = () => {
          if (cuts > before) resolve();
        };
        for (const p of pairs) p.cutNext = true;
      }),
    close: async () => {
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
