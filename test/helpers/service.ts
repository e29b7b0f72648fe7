// Starts the real service (real gRPC and HTTP listeners on port 0) from a config object,
// and gives tests a grpc-js client built from the official Envoy protos.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import { clientConstructors } from '../../src/envoy/protos.js';
import { silentLogger, type Logger } from '../../src/log/logger.js';
import { buildRuntime, type BuildOptions } from '../../src/pipeline/build-runtime.js';
import { fanOut } from '../../src/pipeline/observers.js';
import { startService, type RunningService, type StartOptions } from '../../src/server/service.js';
import { CatalogueObserver } from './catalogue-observer.js';

export interface TestService extends RunningService {
  /** Every decision's code, checked against the catalogue when the service stops. */
  codes: CatalogueObserver;
  dir: string;
  configFile: string;
  client: grpc.Client & Record<string, any>;
  check(req: Record<string, unknown>): Promise<CheckResponse>;
  http(path: string): Promise<{ status: number; headers: Headers; text: string }>;
  stop(): Promise<void>;
}

/** A decoded CheckResponse, proto field names. */
export interface CheckResponse {
  status?: { code?: number; message?: string };
  denied_response?: { status?: { code?: string | number }; headers?: HeaderOption[]; body?: string };
  ok_response?: {
    headers?: HeaderOption[];
    headers_to_remove?: string[];
    query_parameters_to_remove?: string[];
    response_headers_to_add?: HeaderOption[];
  };
  http_response?: string;
  dynamic_metadata?: unknown;
}

export interface HeaderOption {
  header: { key: string; value: string };
  append?: { value: boolean };
}

/** Writes `config` (listen addresses forced to loopback port 0) and starts the service. */
export async function startTestService(
  config: Record<string, unknown>,
  opts: {
    dir?: string;
    files?: Record<string, string>;
    env?: Record<string, string>;
    buildRuntime?: StartOptions['buildRuntime'];
    runtime?: BuildOptions;
    logger?: Logger;
    /** Codes outside the catalogue a test's stand-in phases produce on purpose. */
    unlistedCodes?: string[];
  } = {},
): Promise<TestService> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'mcp-authz-test-'));
  for (const [name, content] of Object.entries(opts.files ?? {})) writeFileSync(join(dir, name), content);
  const configFile = join(dir, 'config.yaml');
  // Listeners on loopback port 0 (a Unix socket the config names stays); Envoy's HTTP
  // authorization service only where the config asks for it.
  const asked = (config.listen ?? {}) as { grpc?: string; http?: string; extAuthzHttp?: string; socketMode?: string };
  const at = (a: string | undefined) => (a?.startsWith('unix:') ? a : '127.0.0.1:0');
  const listen = {
    grpc: at(asked.grpc),
    http: at(asked.http),
    ...(asked.extAuthzHttp !== undefined ? { extAuthzHttp: at(asked.extAuthzHttp) } : {}),
    ...(asked.socketMode !== undefined ? { socketMode: asked.socketMode } : {}),
  };
  writeFileSync(configFile, stringify({ ...config, listen }));
  let loaded = loadConfigFile(configFile, { ...opts.env });
  // As serve does: endpoints from PostgreSQL join the file's.
  if (loaded.config.stores.endpoints === 'postgres')
    loaded = await (await import('../../src/stores/postgres-endpoints.js')).withStoreEndpoints(loaded, { ...opts.env });
  const codes = new CatalogueObserver(opts.unlistedCodes);
  const build = opts.buildRuntime ?? ((l, lg, m) => buildRuntime(l, lg, m, opts.runtime));
  const svc = await startService(loaded, {
    logger: opts.logger ?? silentLogger(),
    buildRuntime: async (l, lg, m) => {
      const rt = await build(l, lg, m);
      rt.observer = fanOut([rt.observer, codes]);
      return rt;
    },
  });
  const { Authorization } = clientConstructors();
  const target = listen.grpc.startsWith('unix:') ? listen.grpc : `127.0.0.1:${svc.grpcPort}`;
  const client = new Authorization(target, grpc.credentials.createInsecure()) as TestService['client'];
  return {
    ...svc,
    codes,
    dir,
    configFile,
    client,
    check: (req) =>
      new Promise((resolve, reject) => {
        client.Check(req, (err: grpc.ServiceError | null, res: CheckResponse) => (err ? reject(err) : resolve(res)));
      }),
    http: async (path) => {
      const res = await fetch(`http://127.0.0.1:${svc.httpPort}${path}`);
      return { status: res.status, headers: res.headers, text: await res.text() };
    },
    stop: async () => {
      client.close();
      await svc.close(2000);
      codes.assertListed();
    },
  };
}

export interface HttpSample {
  method?: string;
  path: string;
  host?: string;
  headers?: Record<string, string>;
  /** Sent as `header_map` (encode_raw_headers) instead of `headers`; duplicates allowed. */
  headerList?: [string, string][];
  body?: string;
  /** Sent as `raw_body` (pack_as_bytes). */
  rawBody?: Buffer;
  source?: string;
  /** The mTLS peer Envoy verified: attributes.source.principal and .certificate (URL-encoded PEM). */
  peer?: { principal?: string; certificate?: string };
  /** Leave content-length out (defaults to the body's length). */
  noContentLength?: boolean;
}

/** A CheckRequest as Envoy's ext_authz HTTP filter builds it. */
export function checkRequest(s: HttpSample): Record<string, unknown> {
  const method = s.method ?? 'POST';
  const host = s.host ?? 'mcp.example.com';
  const bodyLen = s.rawBody ? s.rawBody.length : s.body !== undefined ? Buffer.byteLength(s.body) : 0;
  const base: [string, string][] = [
    [':authority', host],
    [':method', method],
    [':path', s.path],
    [':scheme', 'https'],
  ];
  if (bodyLen > 0 && !s.noContentLength) base.push(['content-length', String(bodyLen)]);
  const http: Record<string, unknown> = { id: '42', method, path: s.path, host, scheme: 'https', protocol: 'HTTP/2' };
  if (s.headerList) {
    http.header_map = { headers: [...base, ...s.headerList].map(([key, v]) => ({ key, raw_value: Buffer.from(v) })) };
  } else {
    const headers: Record<string, string> = Object.fromEntries(base);
    for (const [k, v] of Object.entries(s.headers ?? {})) headers[k.toLowerCase()] = v;
    http.headers = headers;
  }
  if (s.rawBody) http.raw_body = s.rawBody;
  else if (s.body !== undefined) http.body = s.body;
  if (bodyLen) http.size = String(bodyLen);
  return {
    attributes: {
      source: { address: { socket_address: { address: s.source ?? '10.1.2.3', port_value: 40000 } }, ...s.peer },
      destination: { address: { socket_address: { address: '10.0.0.1', port_value: 8080 } } },
      request: { time: { seconds: '1700000000', nanos: 0 }, http },
    },
  };
}

/** A JSON-RPC request body. */
export function rpc(method: string, params?: Record<string, unknown>, id: number | string = 1): string {
  return JSON.stringify({ jsonrpc: '2.0', id, method, ...(params ? { params } : {}) });
}

/** A 2026-07-28 JSON-RPC request body: its params carry the protocol version in `_meta`. */
export function modernRpc(method: string, params: Record<string, unknown> = {}, id: number | string = 1): string {
  const _meta = {
    'io.modelcontextprotocol/protocolVersion': '2026-07-28',
    'io.modelcontextprotocol/clientCapabilities': {},
  };
  return JSON.stringify({ jsonrpc: '2.0', id, method, params: { ...params, _meta } });
}

/** The headers a 2026-07-28 client sends with `modernRpc(method, params)` (values unencoded). */
export function modernHeaders(method: string, name?: string): Record<string, string> {
  return {
    'mcp-protocol-version': '2026-07-28',
    'mcp-method': method,
    ...(name !== undefined ? { 'mcp-name': name } : {}),
  };
}

export function headerValue(options: HeaderOption[] | undefined, name: string): string | undefined {
  return options?.find((h) => h.header.key === name)?.header.value;
}

export function deniedBody(res: CheckResponse): Record<string, any> {
  return JSON.parse(res.denied_response?.body ?? 'null');
}

export function deniedStatus(res: CheckResponse): number | undefined {
  return httpStatusOf(res.denied_response?.status?.code);
}

/** An envoy.type.v3.StatusCode as proto-loader decodes it (a number, or its name). */
export function httpStatusOf(c: string | number | undefined): number | undefined {
  return c === undefined ? undefined : typeof c === 'number' ? c : (httpStatusByName[c] ?? Number(c));
}

// proto-loader with enums: String decodes envoy.type.v3.StatusCode as its name.
const httpStatusByName: Record<string, number> = {
  OK: 200,
  BadRequest: 400,
  Unauthorized: 401,
  Forbidden: 403,
  NotFound: 404,
  PayloadTooLarge: 413,
  UnsupportedMediaType: 415,
  TooManyRequests: 429,
  RequestHeaderFieldsTooLarge: 431,
  ServiceUnavailable: 503,
  InternalServerError: 500,
  BadGateway: 502,
};
