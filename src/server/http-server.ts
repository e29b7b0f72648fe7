// The HTTP side: /healthz, /readyz, /metrics and the RFC 9728 discovery documents.
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';
import type { Runtime } from '../check/runtime.js';
import { denyBody } from '../check/outcome.js';
import { toRequest } from '../envoy/to-request.js';
import type { HealthState } from './health.js';

export interface HttpServerOptions {
  runtime: () => Runtime;
  health: HealthState;
  metrics: () => Promise<{ contentType: string; body: string }>;
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
      const rt = opts.runtime();
      let answer;
      try {
        const request = toRequest({ attributes: { request: { http: { method: 'GET', path: url, host: req.headers.host ?? '', headers: {} } } } }, rt.config.limits);
        answer = rt.directResponder?.answer(request);
      } catch {
        answer = undefined;
      }
      if (answer && !answer.allow) send(answer.status, denyBody(answer), answer.contentType ?? 'application/json');
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
