// A stand-in for Envoy in front of an MCP server — not Envoy. The end-to-end tests and
// `npm run demo` use it where Envoy cannot run (no container engine, a laptop without
// Envoy); examples/compose runs the real Envoy. It reproduces what Envoy's ext_authz HTTP
// filter (gRPC, transport_api_version V3) does, as far as mcp-authz can observe or the
// client can tell:
//
//   request body   buffered up to `maxRequestBytes` (`with_request_body.max_request_bytes`);
//                  beyond it: 413 and no Check, as without `allow_partial_message`; with
//                  `allowPartialMessage` the first `maxRequestBytes` are sent and the
//                  `x-envoy-auth-partial-body: true|false` header tells the service so.
//   CheckRequest   attributes.source/destination socket addresses; request.time;
//                  request.http {id, method, path (query included, as received), host,
//                  scheme, protocol, size, headers}; headers lower-cased, repeated headers
//                  joined with ",", plus the pseudo-headers :authority :method :path :scheme
//                  (no `host` entry: HTTP/1.1 Host becomes :authority); `x-request-id`
//                  generated when absent (the HTTP connection manager does it) and forwarded
//                  upstream; body as `body` (UTF-8) or `raw_body` with `packAsBytes`.
//   failure        a gRPC error or a timeout (`timeoutMs`) → 403 with an empty body, as with
//                  `failure_mode_allow: false` and the default `status_on_error`.
//   denied         the denied_response status (403 when unset), its headers (`append`
//                  defaults to false: replace) and its body, to the client; nothing upstream.
//   allowed        ok_response.headers, headers_to_remove and query_parameters_to_remove
//                  applied as envoy-apply.ts's applyCheckOk models the filter (append
//                  defaults to false: replace; removals after the sets; the query rebuilt as
//                  Envoy rebuilds it), then the request goes upstream with its path as is;
//                  response_headers_to_add are set on the upstream's response, which is
//                  streamed back (SSE is piped, not buffered).
//
// Every request is recorded (method, path, status) so tests can assert what reached it.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { clientConstructors, packageDefinitions } from '../../src/envoy/protos.js';
import { applyCheckOk } from './envoy-apply.js';

export interface ProxyOptions {
  /** Envoy's with_request_body.max_request_bytes. */
  maxRequestBytes?: number;
  /** Envoy's with_request_body.allow_partial_message. */
  allowPartialMessage?: boolean;
  /** Envoy's with_request_body.pack_as_bytes: the body goes in `raw_body`. */
  packAsBytes?: boolean;
  /** The ext_authz gRPC timeout. */
  timeoutMs?: number;
  /** The port to listen on, on 127.0.0.1 (default 0: a free one). */
  port?: number;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  /** The status the proxy answered with; undefined while in flight. */
  status?: number;
  /** Whether the authorization service was asked about it (a Check call was made). */
  checked: boolean;
  /** Whether the request was forwarded to the upstream. */
  forwarded: boolean;
}

export interface ExtAuthzProxy {
  /** http://127.0.0.1:port */
  url: string;
  /** Points the proxy at the authorization service (gRPC) and the upstream (HTTP base URL). */
  attach(target: { authz: string; upstream: string; service?: string }): void;
  /** Every request received so far, in order. */
  requests: ProxiedRequest[];
  /** Requests received whose path (without query) starts with `prefix`. */
  countPath(prefix: string): number;
  stop(): Promise<void>;
}

interface HeaderOption {
  header?: { key?: string; value?: string; raw_value?: Buffer };
  append?: { value?: boolean } | null;
  append_action?: string;
}

interface WireCheckResponse {
  status?: { code?: number };
  denied_response?: { status?: { code?: string | number }; headers?: HeaderOption[]; body?: string };
  ok_response?: {
    headers?: HeaderOption[];
    headers_to_remove?: string[];
    query_parameters_to_set?: { key: string; value: string }[];
    query_parameters_to_remove?: string[];
    response_headers_to_add?: HeaderOption[];
  };
}

// Hop-by-hop headers a proxy never forwards (RFC 9110 §7.6.1).
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

export async function startExtAuthzProxy(opts: ProxyOptions = {}): Promise<ExtAuthzProxy> {
  const maxRequestBytes = opts.maxRequestBytes ?? 1024 * 1024;
  const timeoutMs = opts.timeoutMs ?? 5000;
  const statusByName = httpStatusNames();
  let authz: (grpc.Client & Record<string, any>) | undefined;
  let upstream: URL | undefined;
  const requests: ProxiedRequest[] = [];
  const upstreamAgent = new http.Agent({ keepAlive: true });

  let service: URL | undefined;
  const server = http.createServer((req, res) => {
    // The route to mcp-authz's own pages (its HTTP port), with no authorization check: the
    // pages authenticate their visitors themselves (docs/envoy.md, "/connect and /approvals").
    if (service && /^\/(connect|approvals)\//.test(req.url ?? '')) {
      const up = http.request(
        {
          hostname: service.hostname,
          port: service.port,
          path: req.url,
          method: req.method,
          headers: { ...req.headers, 'x-forwarded-proto': 'http' },
        },
        (upRes) => {
          res.writeHead(upRes.statusCode ?? 502, upRes.rawHeaders);
          upRes.pipe(res);
        },
      );
      up.on('error', () => (res.headersSent ? res.destroy() : res.writeHead(502).end('upstream connect error')));
      req.pipe(up);
      return;
    }
    const record: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      checked: false,
      forwarded: false,
    };
    requests.push(record);
    const answer = (status: number, headers: Record<string, string | string[]>, body: string | Buffer) => {
      record.status = status;
      res.writeHead(status, headers).end(body);
    };
    readBody(req, opts.allowPartialMessage ? Infinity : maxRequestBytes)
      .then(async (body) => {
        if (body === undefined) {
          // Envoy: "Payload Too Large" local reply; the service and the upstream see nothing.
          return answer(413, { 'content-type': 'text/plain' }, 'Payload Too Large');
        }
        if (!authz || !upstream) throw new Error('ext-authz proxy used before attach()');
        const partial = body.length > maxRequestBytes;
        const seen = partial ? body.subarray(0, maxRequestBytes) : body;
        const headers = requestHeaders(req);
        if (opts.allowPartialMessage) headers['x-envoy-auth-partial-body'] = String(partial);
        record.checked = true;
        const check = await callCheck(
          authz,
          checkRequest(req, headers, seen, opts.packAsBytes === true),
          timeoutMs,
        ).catch(() => undefined);
        if (!check) return answer(403, {}, '');

        const ok = check.ok_response;
        if ((check.status?.code ?? 0) !== 0 || !ok) {
          const d = check.denied_response;
          const out: Record<string, string[]> = {};
          applyHeaderOptions(out, d?.headers ?? []);
          const code = d?.status?.code;
          const status = code === undefined ? 403 : typeof code === 'number' ? code : (statusByName.get(code) ?? 403);
          return answer(status || 403, out, d?.body ?? '');
        }

        // The allow applied as Envoy's ext_authz filter applies it (envoy-apply.ts).
        const allowed = applyCheckOk(
          { path: req.url ?? '/', headers: Object.entries(headers).filter(([k]) => !k.startsWith(':')) },
          ok,
        );
        const forward: Record<string, string[]> = {};
        for (const [k, v] of allowed.headers) (forward[k] ??= []).push(v);
        forward.host = [req.headers.host ?? upstream.host];
        if (body.length) forward['content-length'] = [String(body.length)];
        for (const h of HOP_BY_HOP) delete forward[h];

        record.forwarded = true;
        const outgoing = Object.fromEntries(Object.entries(forward).map(([k, v]) => [k, v.length === 1 ? v[0]! : v]));
        const target = {
          protocol: upstream.protocol,
          hostname: upstream.hostname,
          port: upstream.port,
          path: allowed.path,
        };
        const up = http.request({ ...target, method: req.method, headers: outgoing, agent: upstreamAgent }, (upRes) => {
          const out: Record<string, string[]> = {};
          for (let i = 0; i < upRes.rawHeaders.length; i += 2) {
            const k = upRes.rawHeaders[i]!.toLowerCase();
            if (!HOP_BY_HOP.has(k)) (out[k] ??= []).push(upRes.rawHeaders[i + 1]!);
          }
          applyHeaderOptions(out, ok.response_headers_to_add ?? []);
          record.status = upRes.statusCode ?? 502;
          res.writeHead(record.status, out);
          res.flushHeaders();
          upRes.pipe(res);
        });
        up.on('error', () => (res.headersSent ? res.destroy() : answer(502, {}, 'upstream connect error')));
        res.on('close', () => up.destroy());
        up.end(body);
      })
      .catch((err: Error) => answer(500, { 'content-type': 'text/plain' }, `proxy error: ${err.message}`));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    attach(target) {
      const { Authorization } = clientConstructors();
      authz = new Authorization(target.authz, grpc.credentials.createInsecure()) as grpc.Client & Record<string, any>;
      upstream = new URL(target.upstream);
      service = target.service !== undefined ? new URL(target.service) : undefined;
    },
    countPath: (prefix) => requests.filter((r) => r.path.split('?')[0]!.startsWith(prefix)).length,
    stop: async () => {
      authz?.close();
      upstreamAgent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The whole body, or undefined once it exceeds `limit` bytes. */
function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer | undefined> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    req.resume();
    return Promise.resolve(undefined);
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > limit) over = true;
      else chunks.push(c);
    });
    req.on('end', () => resolve(over ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/** Lower-cased request headers, repeats joined with ",", pseudo-headers first, x-request-id ensured. */
function requestHeaders(req: http.IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {
    ':authority': req.headers.host ?? '',
    ':method': req.method ?? 'GET',
    ':path': req.url ?? '/',
    ':scheme': 'http',
  };
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    const k = req.rawHeaders[i]!.toLowerCase();
    if (k === 'host') continue;
    const v = req.rawHeaders[i + 1]!;
    headers[k] = headers[k] === undefined ? v : `${headers[k]},${v}`;
  }
  headers['x-request-id'] ??= randomUUID();
  return headers;
}

function checkRequest(req: http.IncomingMessage, headers: Record<string, string>, body: Buffer, packAsBytes: boolean) {
  const now = Date.now();
  const httpAttrs: Record<string, unknown> = {
    id: String(Math.floor(Math.random() * 2 ** 53)),
    method: req.method,
    path: req.url,
    host: req.headers.host ?? '',
    scheme: 'http',
    protocol: `HTTP/${req.httpVersion}`,
    headers,
    size: String(body.length || Number(req.headers['content-length'] ?? -1)),
  };
  if (body.length) {
    if (packAsBytes) httpAttrs.raw_body = body;
    else httpAttrs.body = body.toString('utf8');
  }
  const socket = req.socket;
  return {
    attributes: {
      source: { address: { socket_address: { address: socket.remoteAddress, port_value: socket.remotePort } } },
      destination: { address: { socket_address: { address: socket.localAddress, port_value: socket.localPort } } },
      request: { time: { seconds: String(Math.floor(now / 1000)), nanos: (now % 1000) * 1e6 }, http: httpAttrs },
    },
  };
}

function callCheck(
  client: grpc.Client & Record<string, any>,
  req: unknown,
  timeoutMs: number,
): Promise<WireCheckResponse> {
  return new Promise((resolve, reject) => {
    client.Check(req, { deadline: Date.now() + timeoutMs }, (err: grpc.ServiceError | null, res: WireCheckResponse) =>
      err ? reject(err) : resolve(res),
    );
  });
}

/** Applies HeaderValueOptions as Envoy does for ext_authz responses: `append` defaults to false (replace). */
function applyHeaderOptions(target: Record<string, string[]>, options: HeaderOption[]): void {
  for (const o of options) {
    const key = o.header?.key?.toLowerCase();
    if (!key) continue;
    const value = o.header?.value ?? o.header?.raw_value?.toString('utf8') ?? '';
    const action =
      o.append_action ?? (o.append?.value === true ? 'APPEND_IF_EXISTS_OR_ADD' : 'OVERWRITE_IF_EXISTS_OR_ADD');
    const present = target[key] !== undefined;
    switch (action) {
      case 'APPEND_IF_EXISTS_OR_ADD':
        (target[key] ??= []).push(value);
        break;
      case 'ADD_IF_ABSENT':
        if (!present) target[key] = [value];
        break;
      case 'OVERWRITE_IF_EXISTS':
        if (present) target[key] = [value];
        break;
      default:
        target[key] = [value];
    }
  }
}

/** envoy.type.v3.StatusCode names → numbers (proto-loader decodes enums as names). */
function httpStatusNames(): Map<string, number> {
  const def = packageDefinitions().authDef['envoy.type.v3.StatusCode'] as unknown as {
    type: { value: { name: string; number: number }[] };
  };
  return new Map(def.type.value.map((v) => [v.name, v.number]));
}
