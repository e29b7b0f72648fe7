// Where a listener listens: "host:port" ("[::1]:9191" for IPv6), or a Unix domain socket,
// "unix:/run/mcp-authz/grpc.sock" (also "unix:///run/…", gRPC's spelling) — Envoy's `pipe`
// address. A socket file gets `listen.socketMode` once listening; a stale one left by a
// process that died is replaced, a live one is never taken over; Node removes the file when
// the listener closes.
import { chmod, lstat, unlink } from 'node:fs/promises';
import cluster from 'node:cluster';
import { connect, type AddressInfo, type Server } from 'node:net';
import { portNumber, splitHostPort } from '../contracts/host-port.js';
import type { Config } from '../config/schema.js';

export type ListenAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/** The longest socket path Linux takes (sun_path is 108 bytes, NUL included). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** Parses a listen address; throws with the forms accepted. */
export function parseListenAddress(address: string): ListenAddress {
  if (address.startsWith('unix:')) {
    const path = address.slice('unix:'.length).replace(/^\/\/(?=\/)/, '');
    if (!path.startsWith('/'))
      throw new Error(
        `a Unix socket address needs an absolute path: unix:/run/mcp-authz/grpc.sock, got ${JSON.stringify(address)}`,
      );
    if (Buffer.byteLength(path) > MAX_SOCKET_PATH_BYTES)
      throw new Error(`a Unix socket path is at most ${MAX_SOCKET_PATH_BYTES} bytes, got ${Buffer.byteLength(path)}`);
    return { kind: 'unix', path };
  }
  const hp = splitHostPort(address);
  const port = portNumber(hp?.port);
  if (!hp?.exact || port === undefined || hp.host === '' || (!address.startsWith('[') && /\s/.test(hp.host))) {
    throw new Error(`expected host:port (e.g. 0.0.0.0:9191) or unix:/path/to.sock, got ${JSON.stringify(address)}`);
  }
  return { kind: 'tcp', host: hp.host, port };
}

/** Whether the config's address is a Unix socket. */
export const isUnixAddress = (address: string): boolean => address.startsWith('unix:');

/** The path of a Unix socket address. */
export const socketPath = (address: string): string => (parseListenAddress(address) as { path: string }).path;

/** "0660" → 0o660. */
export function parseSocketMode(mode: string): number {
  return Number.parseInt(mode, 8);
}

/**
 * Makes a socket path free to listen on: absent, or a socket nobody listens on any more (a
 * process that died without closing it), which is removed. A live socket or another kind of
 * file is an error that names it.
 */
export async function freeSocketPath(path: string): Promise<void> {
  let st;
  try {
    st = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!st.isSocket()) throw new Error(`cannot listen on ${path}: the file exists and is not a socket`);
  const alive = await new Promise<boolean>((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNREFUSED' ? resolve(false) : reject(err)));
  });
  if (alive) throw new Error(`cannot listen on ${path}: another process is listening on it`);
  await unlink(path);
}

export interface ListenOptions {
  /** The socket file's mode (listen.socketMode). */
  socketMode: number;
  /** Leave stale-socket handling to the cluster primary (a worker's listen is the primary's socket). */
  freeStale?: boolean;
}

/**
 * Listens on the address; resolves with the TCP port (0 for a Unix socket) once listening
 * and, for a socket, once its mode is set.
 */
export async function listenOn(server: Server, address: string, opts: ListenOptions): Promise<number> {
  const where = parseListenAddress(address);
  if (where.kind === 'unix' && opts.freeStale !== false) await freeSocketPath(where.path);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    const done = () => {
      server.off('error', onError);
      resolve();
    };
    if (where.kind === 'unix') server.listen(where.path, done);
    else server.listen(where.port, where.host, done);
  });
  if (where.kind === 'unix') {
    await chmod(where.path, opts.socketMode);
    return 0;
  }
  return (server.address() as AddressInfo).port;
}

/** How this process makes Unix sockets: a cluster worker's socket is the primary's, which freed a stale one before forking. */
export function listenOptions(config: Config): ListenOptions {
  return { socketMode: parseSocketMode(config.listen.socketMode), freeStale: !cluster.isWorker };
}

/** The log's account of the listeners beyond their ports: Unix sockets, and what serves TLS. */
export function listeningOn(
  config: Config,
  ports: readonly ('grpc' | 'http' | 'extAuthzHttp')[] = ['grpc', 'http', 'extAuthzHttp'],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const sockets = ports.filter((p) => config.listen[p]?.startsWith('unix:')).map((p) => [p, config.listen[p]]);
  if (sockets.length > 0) out.sockets = Object.fromEntries(sockets);
  const t = config.tls;
  if (t)
    out.tls = Object.fromEntries(
      ports.filter((p) => p !== 'extAuthzHttp' || config.listen.extAuthzHttp !== undefined).map((p) => [p, t[p]]),
    );
  return out;
}
