// (d) Envoy's HTTP ext_authz (`http_service`) shape on node:http: Envoy forwards the client's
// request — its method, path and headers, and its body with `with_request_body` — and reads
// the answer: 200 allows, adding the response headers named in `allowed_upstream_headers` to
// the upstream request and removing those listed in `x-envoy-auth-headers-to-remove`; any
// other status is a deny, sent to the client with its body and headers. The forwarded request
// becomes the same CheckRequest object grpc-js would decode, so the pipeline is unchanged.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Product, Runtime, Served } from './serve.js';

const MAX_BODY_BYTES = 8 * 1024 * 1024; // Envoy's max_request_bytes is set below this

type Outcome = Parameters<Product['encodeCheckResponse']>[0];
const INTERNAL_DENY: Outcome = {
  kind: 'deny',
  allow: false,
  status: 503,
  grpc: 14,
  code: 'internal_error',
  description: 'internal error',
  headers: [],
};

/** The forwarded request as the CheckRequest fields the pipeline reads (proto field names). */
function toWire(req: IncomingMessage, body: Buffer): Record<string, unknown> {
  const headers: Record<string, string> = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const k = raw[i]!.toLowerCase();
    // Envoy joins repeated headers with "," in the CheckRequest's map.
    headers[k] = headers[k] === undefined ? raw[i + 1]! : `${headers[k]},${raw[i + 1]!}`;
  }
  const host = headers.host ?? '';
  headers[':authority'] = host;
  headers[':method'] = req.method ?? '';
  headers[':path'] = req.url ?? '';
  return {
    attributes: {
      source: {
        address: {
          socket_address: { address: req.socket.remoteAddress ?? '', port_value: req.socket.remotePort ?? 0 },
        },
      },
      request: {
        http: {
          id: headers['x-request-id'] ?? '',
          method: req.method,
          path: req.url,
          host,
          scheme: headers['x-forwarded-proto'] ?? 'http',
          headers,
          ...(body.length ? { raw_body: body } : {}),
          size: String(body.length),
          protocol: `HTTP/${req.httpVersion}`,
        },
      },
    },
  };
}

function answer(m: Product, res: ServerResponse, o: Outcome): void {
  if (o.allow) {
    const h: Record<string, string> = {};
    for (const x of o.headers) h[x.name] = x.value;
    if (o.headersToRemove.length) h['x-envoy-auth-headers-to-remove'] = o.headersToRemove.join(',');
    // Query parameters cannot be removed through http_service: a deployment using it keeps credentials out of the query.
    h['content-length'] = '0';
    res.writeHead(200, h).end();
    return;
  }
  const body = m.responseBody(o);
  const h: Record<string, string> = {
    'content-type': m.responseContentType(o),
    'content-length': String(Buffer.byteLength(body)),
  };
  for (const x of o.headers) h[x.name] = x.value;
  res.writeHead(o.status, h).end(body);
}

export async function serveHttpExtAuthz(m: Product, rt: Runtime, port: number): Promise<Served> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (d: Buffer) => {
      size += d.length;
      if (size > MAX_BODY_BYTES) {
        answer(m, res, {
          kind: 'deny',
          allow: false,
          status: 413,
          grpc: 3,
          code: 'body_too_large',
          description: `The request body is larger than ${MAX_BODY_BYTES} bytes.`,
          headers: [],
        });
        req.destroy();
        return;
      }
      chunks.push(d);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size);
      m.runCheck(rt, m.toRequest, toWire(req, body)).then(
        (trace) => answer(m, res, trace.outcome),
        () => answer(m, res, INTERNAL_DENY),
      );
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as { port: number }).port,
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
