// The HTTP side: /healthz, /readyz, /metrics and the RFC 9728 discovery documents.
import { createServer, type Server } from 'node:http';
import type { DirectResponder } from '../check/phases.js';
import { responseBody, responseContentType } from '../contracts/outcome.js';
import { requestForDiscovery } from '../request/discovery-request.js';
import type { HealthState } from './health.js';

export interface HttpServerOptions {
  health: HealthState;
  metrics: () => Promise<{ contentType: string; body: string }>;
  /** Answers /.well-known/ requests (the same responder Check uses). */
  discovery: DirectResponder;
}

export function createHttpServer(opts: HttpServerOptions): Server {
  return createServer((req, res) => {
    const url = req.url ?? '/';
    const path = url.split('?')[0]!;
    const send = (status: number, body: string, type = 'application/json', headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, JSON.stringify({ error: 'method_not_allowed' }), 'application/json', { allow: 'GET, HEAD' });
      return;
    }
    if (path === '/healthz') {
      send(200, JSON.stringify({ status: 'ok' }));
    } else if (path === '/readyz') {
      const ready = opts.health.current === 'SERVING';
      send(ready ? 200 : 503, JSON.stringify(ready ? { status: 'ready' } : { status: 'not_ready', reasons: opts.health.notReadyReasons }));
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
  });
}

export function listenHttp(server: Server, address: string): Promise<number> {
  const { host, port } = splitHostPort(address);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      const a = server.address();
      resolve(typeof a === 'object' && a ? a.port : port);
    });
  });
}

/** Stops listening and drops open (keep-alive) connections; resolves once closed. */
export function closeHttp(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export function splitHostPort(address: string): { host: string; port: number } {
  const i = address.lastIndexOf(':');
  let host = address.slice(0, i);
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  return { host, port: Number(address.slice(i + 1)) };
}
