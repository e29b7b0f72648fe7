// The HTTP side: /healthz, /readyz, /metrics and the RFC 9728 discovery documents; over TLS
// when tls.http asks for it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { DirectResponder, HttpPages } from '../decision/phases.js';
import { responseBody, responseContentType } from '../contracts/outcome.js';
import { requestForDiscovery } from '../request/discovery-request.js';
import type { HealthState } from './health.js';
import { listenOn, type ListenOptions } from './listen-address.js';
import type { PortTls } from './tls-files.js';

export interface HttpServerOptions {
  health: HealthState;
  metrics: () => Promise<{ contentType: string; body: string }>;
  /** Answers /.well-known/ requests (the same responder Check uses). */
  discovery: DirectResponder;
  /** Pages for people (userConnections' /connect/<provider>), tried first. */
  pages?: HttpPages;
  tls?: PortTls;
}

export function createHttpServer(opts: HttpServerOptions): Server {
  const handler = (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const send = (status: number, body: string, type = 'application/json', headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (opts.pages && path.startsWith('/connect/') && opts.pages.handle(req, res)) return;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, JSON.stringify({ error: 'method_not_allowed' }), 'application/json', { allow: 'GET, HEAD' });
      return;
    }
    if (path === '/healthz') {
      send(200, JSON.stringify({ status: 'ok' }));
    } else if (path === '/readyz') {
      const ready = opts.health.current === 'SERVING';
      send(
        ready ? 200 : 503,
        JSON.stringify(ready ? { status: 'ready' } : { status: 'not_ready', reasons: opts.health.notReadyReasons }),
      );
    } else if (path === '/metrics') {
      opts.metrics().then(
        (m) => send(200, m.body, m.contentType),
        (err: Error) => send(500, JSON.stringify({ error: 'metrics_failed', error_description: err.message })),
      );
    } else if (path.startsWith('/.well-known/')) {
      let answer;
      try {
        answer = opts.discovery.answer(requestForDiscovery('GET', url, req.headers.host ?? ''));
      } catch {
        answer = undefined;
      }
      if (answer) send(answer.status, responseBody(answer), responseContentType(answer));
      else send(404, JSON.stringify({ error: 'not_found' }));
    } else {
      send(404, JSON.stringify({ error: 'not_found' }));
    }
  };
  if (!opts.tls) return createServer(handler);
  const server = createHttpsServer(opts.tls.serverOptions(), handler);
  opts.tls.attach(server, 'http');
  // An https.Server is an http.Server to everything that listens, closes and serves with it.
  return server as unknown as Server;
}

/** Listens on "host:port" or "unix:/path"; resolves with the TCP port (0 for a socket). */
export function listenHttp(
  server: Server,
  address: string,
  listen: ListenOptions = { socketMode: 0o660 },
): Promise<number> {
  return listenOn(server, address, listen);
}

/** Stops listening and drops open (keep-alive) connections; resolves once closed. */
export function closeHttp(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
