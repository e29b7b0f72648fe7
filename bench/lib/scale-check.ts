// `npm run bench -- --scale`: the cost curves of a whole Check. Each point builds the real
// runtime (the compiled dist/ modules, the shipped policy, built as `serve` builds it) from a
// config of that size and runs Checks through it in this process, without gRPC: the
// CheckRequest decoded from its bytes, runCheck, the answer encoded (bench/lib/in-process.ts
// does the same for the benchmark's scenarios). Every point reports, from the same run:
// - us: this process's CPU µs per Check (user + system, the best of three rounds, so a busy
//   machine inflates it less than wall time);
// - heapMiB: the JS heap the point's runtime retains (after a full collection, less what was
//   live before it was built — the benchmark's own inputs are made before that baseline);
// - rssMiB: the process's resident memory at the end of the point.
// The curves:
// - endpoints: 10 → 10,000 path-only or host-based endpoints, 1,024 distinct requests each
//   choosing its own endpoint (X-API-Key + tools/call read_file);
// - grants per key: a key whose grants name 1 → 1,000 tools, calling the last one listed;
// - tools per list: a tools/list response of 10 → 5,000 tools through ext_proc (headers, body,
//   response headers, response body filtered to the 1 in 10 granted), per list and per item
//   (the exchange less the same exchange with an empty list, over the item count);
// - OAuth issuers: 1 → 50 configured issuers (EdDSA, each its own JWKS), the token from the
//   last one, cached (one token repeated) and fresh (4,096 tokens round-robin through a
//   1,000-entry cache: every Check verifies a signature);
// - distinct tokens: 1,000 → 1,000,000 distinct EdDSA bearer tokens cycling through the
//   verified-token cache at its default size (1,000,000): heapMiB is then mostly the cache.
import { generateKeyPairSync, sign as signBytes, type KeyObject } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Registry } from 'prom-client';
import type { ProcessingRequest } from '../../src/ext-proc/wire.js';
import type { Runtime } from '../../src/pipeline/runtime.js';
import { requestBody, requestHeaders, responseBody, responseHeaders } from '../../test/helpers/ext-proc.js';
import { checkRequest, rpc } from '../../test/helpers/service.js';
import { sha256Hex } from './credentials.js';
import { round } from './ghz.js';
import { product } from './in-process.js';
import { root } from './paths.js';

/** One point of a curve. */
export interface CurvePoint {
  /** The size: endpoints, grants, tools in the list, issuers, distinct tokens. */
  x: number;
  /** CPU µs per Check (per list exchange for lists). */
  us: number;
  /** Lists: CPU µs per listed item, the exchange less an empty list's, over the item count. */
  usPerItem?: number;
  /** The JS heap the point's runtime retains, MiB (after a full collection). */
  heapMiB: number;
  /** The ArrayBuffers (typed arrays, WASM memory) it retains besides, MiB: the verified-token cache lives there. */
  arrayBuffersMiB: number;
  /** The process's resident memory at the end of the point, MiB. */
  rssMiB: number;
  /** Checks (or exchanges) per measured round. */
  calls: number;
}

export interface CurveSeries {
  label: string;
  points: CurvePoint[];
}

/**
 * A curve and its target: `ratio`, the top point's `us` at most `max` × the bottom's;
 * `perItem`, every point's `usPerItem` at most `max`.
 */
export interface Curve {
  name: string;
  title: string;
  xLabel: string;
  target: { kind: 'ratio'; max: number } | { kind: 'perItem'; max: number };
  series: CurveSeries[];
  /** Per series: whether it met the target. */
  met: boolean[];
}

export interface CheckCurveOptions {
  bundle: string | undefined;
  endpointCounts: number[];
  grantCounts: number[];
  listSizes: number[];
  issuerCounts: number[];
  tokenCounts: number[];
  log: (msg: string) => void;
}

type Product = Awaited<ReturnType<typeof product>>;

const HOST = 'mcp.example.com';
const USER = 'bench-user';
const RESOURCE = `https://${HOST}/mcp/oauth`;
const clientHeaders = {
  'content-type': 'application/json',
  accept: 'application/json, text/event-stream',
  'mcp-protocol-version': '2025-06-18',
  'mcp-session-id': '6f1c1a52-2b7e-4c59-9d55-0f7a3b4f2d10',
  'user-agent': 'claude-code/1.0.88 (bench)',
  'x-forwarded-proto': 'https',
  'x-request-id': 'c1d9a0f4-6e43-4a8e-9d7e-3b1f0a2c5e77',
};
const API_KEY = 'mcp_scale_curves_0123456789abcdefghijklmnopqrstuvwxyz';
const call = (tool: string) => rpc('tools/call', { name: tool, arguments: { path: '/docs/README.md' } }, 7);

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const MiB = 2 ** 20;

/** Live heap after full collections (several: weak references and finalizers free more on the next). */
function liveHeap(): number {
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

/** Live ArrayBuffer bytes (after liveHeap's collections). */
const liveArrayBuffers = () => process.memoryUsage().arrayBuffers;

export async function measureCheckCurves(opts: CheckCurveOptions): Promise<Curve[]> {
  if (!opts.bundle) throw new Error('the Check curves need the shipped policy bundle (npm run policy:build)');
  const p = await product();
  const h = new Harness(p, opts.bundle, opts.log);
  const curves: Curve[] = [];
  const add = (c: Omit<Curve, 'met'>) => {
    const met = c.series.map((s) => meets(c.target, s.points));
    curves.push({ ...c, met });
    return c;
  };
  if (opts.endpointCounts.length) add(await endpointsCurve(h, opts.endpointCounts));
  if (opts.grantCounts.length) add(await grantsCurve(h, opts.grantCounts));
  if (opts.listSizes.length) add(await listCurve(h, opts.listSizes));
  if (opts.issuerCounts.length || opts.tokenCounts.length) {
    const jwks = await startJwksServer(Math.max(1, ...opts.issuerCounts));
    try {
      if (opts.issuerCounts.length) add(await issuersCurve(h, jwks, opts.issuerCounts));
      if (opts.tokenCounts.length) add(await tokensCurve(h, jwks, opts.tokenCounts));
    } finally {
      await jwks.close();
    }
  }
  return curves;
}

export function meets(target: Curve['target'], points: CurvePoint[]): boolean {
  if (points.length === 0) return false;
  if (target.kind === 'perItem') return points.every((pt) => pt.usPerItem === undefined || pt.usPerItem <= target.max);
  return points[points.length - 1]!.us <= target.max * points[0]!.us;
}

/** Builds runtimes from configs and measures Checks through them. */
class Harness {
  /** The service log and decision log, written to /dev/null (one logger: each adds an exit hook). */
  private readonly logger;

  constructor(
    readonly p: Product,
    private readonly bundle: string,
    readonly log: (msg: string) => void,
  ) {
    this.logger = p.createLogger('info', { fd: openSync('/dev/null', 'w') });
  }

  /** The runtime `serve` builds from this config (decision log on, written to /dev/null; no file watching). */
  async runtime(config: Record<string, unknown>): Promise<Runtime> {
    const raw = {
      publicBaseUrl: `https://${HOST}`,
      policy: { bundle: this.bundle },
      rateLimit: { failedAuth: { maxAttempts: 1_000_000_000, windowSeconds: 60 } },
      ...config,
    };
    const dir = join(root, 'bench', 'out');
    const cfg = this.p.validateConfig(raw, 'scale curve', dir, {});
    return this.p.buildRuntime({ config: cfg, file: undefined, baseDir: dir, raw }, this.logger, new Registry(), {
      watch: false,
      sharedLimits: false,
    });
  }

  /** CheckRequest bytes as Envoy's ext_authz filter sends them. */
  wire(path: string, host: string, body: string, headers: Record<string, string>): Uint8Array {
    const check = this.p.authorizationService().Check!;
    return check.requestSerialize(checkRequest({ path, host, body, headers: { ...clientHeaders, ...headers } }));
  }

  /** One Check from bytes to answer bytes; whether it allowed. */
  async check(rt: Runtime, wire: Uint8Array): Promise<boolean> {
    const trace = await this.p.runCheck(rt, this.p.toRequest, this.p.decodeCheckRequest(wire));
    this.p.checkResponseBytes(trace.outcome, trace.decisionId);
    return trace.outcome.allow;
  }

  /**
   * A point: the runtime built after a heap baseline, `warm` run once, then `rounds` rounds of
   * `calls` calls of `fn` (each must allow), CPU µs per call the best round; memory at the end.
   */
  async point(
    x: number,
    build: () => Promise<Runtime>,
    fn: (rt: Runtime, i: number) => Promise<boolean>,
    o: { calls: number; rounds?: number; warm?: (rt: Runtime) => Promise<void> },
  ): Promise<CurvePoint> {
    const base = liveHeap();
    const baseBuffers = liveArrayBuffers();
    const rt = await build();
    try {
      if (!(await fn(rt, 0))) throw new Error(`point ${x}: the first call was denied`);
      if (o.warm) await o.warm(rt);
      else await loop(Math.min(o.calls, 2000), (i) => fn(rt, i));
      let best = Infinity;
      for (let r = 0; r < (o.rounds ?? 3); r++) {
        const start = process.cpuUsage();
        const denied = await loop(o.calls, (i) => fn(rt, i));
        const used = process.cpuUsage(start);
        if (denied > 0) throw new Error(`point ${x}: ${denied} of ${o.calls} calls denied`);
        best = Math.min(best, (used.user + used.system) / o.calls);
      }
      const heapMiB = (liveHeap() - base) / MiB;
      return {
        x,
        us: round(best, 2),
        heapMiB: round(heapMiB, 1),
        arrayBuffersMiB: round((liveArrayBuffers() - baseBuffers) / MiB, 1),
        rssMiB: round(process.memoryUsage().rss / MiB, 0),
        calls: o.calls,
      };
    } finally {
      await rt.close();
    }
  }
}

/**
 * The points of a series, smallest first. The smallest is measured once more before them and
 * that figure dropped: the first runtime of a series runs while the JIT still compiles the
 * path, which would flatter every curve (the bottom point too high).
 */
async function sweep(
  sizes: number[],
  measure: (n: number, warmUp: boolean) => Promise<CurvePoint>,
): Promise<CurvePoint[]> {
  const points: CurvePoint[] = [];
  if (sizes.length > 0) await measure(sizes[0]!, true);
  for (const n of sizes) points.push(await measure(n, false));
  return points;
}

/** Runs fn n times, letting the event loop turn every 64 calls as a server does; returns the denials. */
async function loop(n: number, fn: (i: number) => Promise<boolean>): Promise<number> {
  let denied = 0;
  for (let i = 0; i < n; i++) {
    if (!(await fn(i))) denied++;
    if (i % 64 === 63) await new Promise((r) => setImmediate(r));
  }
  return denied;
}

const apiKeyEntry = (permissions: string[]) => ({
  id: 'scale-owner',
  sha256: sha256Hex(API_KEY),
  name: 'scale curves',
  userId: USER,
  role: 'user',
  permissions,
});

async function endpointsCurve(h: Harness, counts: number[]): Promise<Omit<Curve, 'met'>> {
  const series: CurveSeries[] = [];
  for (const shape of ['path-only', 'host-based'] as const) {
    const points = await sweep(counts, async (n, warmUp) => {
      const endpoints = Array.from({ length: n }, (_, i) => ({
        name: `e${i}`,
        match: shape === 'path-only' ? { pathPrefix: `/t/tenant-${i}/mcp` } : { host: `tenant-${i}.${HOST}` },
        owner: USER,
        auth: { apiKey: true, oauth: false },
      }));
      const pick = (i: number) => (i * 7919) % n;
      const wires = Array.from({ length: 1024 }, (_, i) =>
        shape === 'path-only'
          ? h.wire(`/t/tenant-${pick(i)}/mcp`, HOST, call('read_file'), { 'x-api-key': API_KEY })
          : h.wire('/mcp', `tenant-${pick(i)}.${HOST}`, call('read_file'), { 'x-api-key': API_KEY }),
      );
      const pt = await h.point(
        n,
        () => h.runtime({ endpoints, apiKeys: { keys: [apiKeyEntry(['tools:read_*'])] } }),
        (rt, i) => h.check(rt, wires[i & 1023]!),
        { calls: 5000 },
      );
      if (!warmUp)
        h.log(`whole Check, ${shape}, ${n} endpoints: ${pt.us} µs CPU, heap +${pt.heapMiB} MiB, RSS ${pt.rssMiB} MiB`);
      return pt;
    });
    series.push({ label: shape, points });
  }
  return {
    name: 'endpoints',
    title: 'Endpoints (whole Check)',
    xLabel: 'endpoints',
    target: { kind: 'ratio', max: 1.3 },
    series,
  };
}

async function grantsCurve(h: Harness, counts: number[]): Promise<Omit<Curve, 'met'>> {
  const points = await sweep(counts, async (n, warmUp) => {
    const grants = Array.from({ length: n }, (_, i) => `tools:tool_${i}`);
    const wire = h.wire('/mcp/files', HOST, call(`tool_${n - 1}`), { 'x-api-key': API_KEY });
    const pt = await h.point(
      n,
      () =>
        h.runtime({
          endpoints: [
            { name: 'files', match: { pathPrefix: '/mcp/files' }, owner: USER, auth: { apiKey: true, oauth: false } },
          ],
          apiKeys: { keys: [apiKeyEntry(grants)] },
        }),
      (rt) => h.check(rt, wire),
      { calls: n >= 1000 ? 1000 : 5000 },
    );
    if (!warmUp) h.log(`grants per key, ${n}: ${pt.us} µs CPU per Check, heap +${pt.heapMiB} MiB`);
    return pt;
  });
  return {
    name: 'grants',
    title: 'Grants per key',
    xLabel: 'grants on the key',
    target: { kind: 'ratio', max: 1.3 },
    series: [{ label: 'tools/call of the last grant', points }],
  };
}

/** A tools/list response of n tools, every tenth one `read_…` (granted by tools:read_*). */
export function toolList(n: number): { body: string; visible: number } {
  const tools = Array.from({ length: n }, (_, i) => ({
    name: i % 10 === 0 ? `read_${i}` : `admin_tool_${i}`,
    description: `Tool ${i} of the benchmark's MCP server.`,
    inputSchema: {
      type: 'object',
      properties: { path: { type: 'string', description: 'A path' } },
      required: ['path'],
    },
  }));
  return { body: JSON.stringify({ jsonrpc: '2.0', id: 3, result: { tools } }), visible: Math.ceil(n / 10) };
}

async function listCurve(h: Harness, sizes: number[]): Promise<Omit<Curve, 'met'>> {
  const { ExtProcSession } = (await import(
    pathToFileURL(join(root, 'dist', 'ext-proc', 'session.js')).href
  )) as typeof import('../../src/ext-proc/session.js');
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const def = h.p.extProcService().Process as any;
  const list = rpc('tools/list', {}, 3);
  const config = {
    endpoints: [
      { name: 'files', match: { pathPrefix: '/mcp/files' }, owner: USER, auth: { apiKey: true, oauth: false } },
    ],
    apiKeys: { keys: [apiKeyEntry(['tools:read_*'])] },
  };
  const points: CurvePoint[] = [];
  let emptyUs = 0;
  for (const [i, n] of [0, 0, ...sizes.filter((s) => s > 0)].entries()) {
    const upstream = toolList(n);
    const messages: ProcessingRequest[] = [
      requestHeaders({
        path: '/mcp/files',
        host: HOST,
        headers: [...Object.entries(clientHeaders).filter(([k]) => k !== 'content-type'), ['x-api-key', API_KEY]],
        body: list,
        source: '10.1.2.3:40000',
      }),
      requestBody(list),
      responseHeaders(200, [
        ['content-type', 'application/json'],
        ['content-length', String(Buffer.byteLength(upstream.body))],
      ]),
      responseBody(upstream.body, true),
    ];
    const wires: Buffer[] = messages.map((m) => def.requestSerialize(m));
    let lastBody: string | undefined;
    const exchange = async (): Promise<boolean> => {
      const session = new ExtProcSession(rt());
      let allowed = false;
      for (const w of wires) {
        const step = await session.onMessage(def.requestDeserialize(w));
        for (const a of step.send) {
          def.responseSerialize(a);
          if (a.immediate_response) return false;
          if (a.request_body) allowed = true;
          const body = (a.response_body?.response?.body_mutation as { body?: Uint8Array } | undefined)?.body;
          if (body !== undefined) lastBody = Buffer.from(body).toString('utf8');
        }
      }
      await session.onEnd();
      return allowed;
    };
    let current: Runtime | undefined;
    const rt = () => current!;
    const calls = Math.max(50, Math.min(5000, Math.round(250_000 / Math.max(n, 50))));
    const pt = await h.point(
      n,
      async () => (current = await h.runtime(config)),
      () => exchange(),
      { calls },
    );
    if (n > 0) {
      const listed = lastBody === undefined ? -1 : (JSON.parse(lastBody).result?.tools?.length ?? -1);
      if (listed !== upstream.visible)
        throw new Error(`a list of ${n} tools was filtered to ${listed}, not ${upstream.visible}`);
    }
    if (i === 0) continue; // the warm-up (see sweep)
    if (n === 0) {
      emptyUs = pt.us;
      h.log(`tools/list through ext_proc, empty list: ${pt.us} µs CPU per exchange`);
      continue;
    }
    pt.usPerItem = round(Math.max(0, pt.us - emptyUs) / n, 3);
    points.push(pt);
    h.log(
      `tools/list through ext_proc, ${n} tools: ${pt.us} µs CPU per list, ${pt.usPerItem} µs per item, heap +${pt.heapMiB} MiB`,
    );
  }
  return {
    name: 'list',
    title: 'Tools per list (ext_proc filtering)',
    xLabel: 'tools in the list',
    target: { kind: 'perItem', max: 2 },
    series: [{ label: 'µs per item', points }],
  };
}

interface JwksServer {
  issuer(i: number): string;
  sign(issuer: number, jti: string): Promise<string>;
  close(): Promise<void>;
}

const b64 = (s: string) => Buffer.from(s).toString('base64url');

/** `count` EdDSA issuers on one loopback server: /i/<n>/jwks.json each. */
async function startJwksServer(count: number): Promise<JwksServer> {
  const keys: { privateKey: KeyObject; jwk: Record<string, unknown> }[] = [];
  for (let i = 0; i < count; i++) {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    keys.push({ privateKey, jwk: { ...publicKey.export({ format: 'jwk' }), kid: `k${i}`, alg: 'EdDSA', use: 'sig' } });
  }
  const server: Server = createServer((req, res) => {
    const m = /^\/i\/(\d+)\/jwks\.json$/.exec(req.url ?? '');
    const key = m ? keys[Number(m[1])] : undefined;
    res
      .writeHead(key ? 200 : 404, { 'content-type': 'application/json' })
      .end(JSON.stringify(key ? { keys: [key.jwk] } : {}));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  const issuer = (i: number) => `${base}/i/${i}`;
  return {
    issuer,
    // node:crypto's synchronous sign: a million tokens sign in a minute rather than several.
    sign: async (i, jti) => {
      const now = Math.floor(Date.now() / 1000);
      const payload = {
        scope: 'tools:search tools:read_file',
        iss: issuer(i),
        aud: RESOURCE,
        sub: USER,
        iat: now,
        exp: now + 6 * 3600,
        jti,
      };
      const input = `${b64(JSON.stringify({ alg: 'EdDSA', kid: `k${i}`, typ: 'JWT' }))}.${b64(JSON.stringify(payload))}`;
      return `${input}.${signBytes(null, Buffer.from(input), keys[i]!.privateKey).toString('base64url')}`;
    },
    close: () => new Promise((r) => server.close(() => r())),
  };
}

function oauthConfig(jwks: JwksServer, issuers: number, tokenCacheSize?: number): Record<string, unknown> {
  return {
    oauth: {
      issuers: Array.from({ length: issuers }, (_, i) => ({
        issuer: jwks.issuer(i),
        jwksUri: `${jwks.issuer(i)}/jwks.json`,
        audiences: [RESOURCE],
        algorithms: ['EdDSA'],
        userIds: 'shared',
      })),
      ...(tokenCacheSize !== undefined ? { tokenCacheSize } : {}),
    },
    endpoints: [
      {
        name: 'oauth',
        match: { pathPrefix: '/mcp/oauth' },
        owner: USER,
        auth: { apiKey: false, oauth: true },
        resource: RESOURCE,
        scopes: ['tools:search', 'tools:read_file'],
      },
    ],
  };
}

async function issuersCurve(h: Harness, jwks: JwksServer, counts: number[]): Promise<Omit<Curve, 'met'>> {
  const fresh: CurvePoint[] = [];
  const cached = await sweep(counts, async (n, warmUp) => {
    const last = n - 1;
    const oneToken = h.wire('/mcp/oauth', HOST, call('read_file'), {
      authorization: `Bearer ${await jwks.sign(last, 'cached')}`,
    });
    const c = await h.point(
      n,
      () => h.runtime(oauthConfig(jwks, n)),
      (rt) => h.check(rt, oneToken),
      { calls: 5000 },
    );
    const tokens: Uint8Array[] = [];
    for (let i = 0; i < 4096; i++)
      tokens.push(
        h.wire('/mcp/oauth', HOST, call('read_file'), {
          authorization: `Bearer ${await jwks.sign(last, `f${n}-${i}`)}`,
        }),
      );
    // 4,096 tokens round-robin through a 1,000-entry cache: every Check verifies a signature.
    const f = await h.point(
      n,
      () => h.runtime(oauthConfig(jwks, n, 1000)),
      (rt, i) => h.check(rt, tokens[i & 4095]!),
      {
        calls: 4096,
      },
    );
    if (!warmUp) {
      fresh.push(f);
      h.log(`OAuth, ${n} issuers: cached token ${c.us} µs, fresh token ${f.us} µs CPU per Check`);
    }
    return c;
  });
  return {
    name: 'issuers',
    title: 'OAuth issuers',
    xLabel: 'configured issuers',
    target: { kind: 'ratio', max: 1.3 },
    series: [
      { label: 'cached token', points: cached },
      { label: 'fresh token', points: fresh },
    ],
  };
}

/** The verified-token cache's default size (src/config/schema.ts; its default byte budget holds as many of one identity). */
const TOKEN_CACHE = 1_000_000;
/** The Checks measured per point: a window of the cycle. */
const TOKEN_WINDOW = 20_000;

async function tokensCurve(h: Harness, jwks: JwksServer, counts: number[]): Promise<Omit<Curve, 'met'>> {
  const points = await sweep(counts, async (n, warmUp) => {
    // The cycle presents token 0, 1, …, n-1, 0, 1, …. A cache that has seen one whole cycle
    // holds its last min(n, cache) tokens, so the warm-up presents those (a cycle of more is
    // not needed to reach the state it leaves). When they all fit, the measured window is
    // 20,000 tokens spread evenly over the cycle (all hits, over the whole table); otherwise
    // it is the next 20,000 tokens of the cycle from 0 (all evicted by the end of a cycle).
    const measured = Math.min(n, TOKEN_WINDOW);
    const warmFrom = n - Math.min(n, TOKEN_CACHE);
    const window = Array.from({ length: measured }, (_, j) => (n <= TOKEN_CACHE ? Math.floor((j * n) / measured) : j));
    const t0 = performance.now();
    const wires = new Map<number, Uint8Array>();
    const wireOf = async (i: number) =>
      h.wire('/mcp/oauth', HOST, call('read_file'), { authorization: `Bearer ${await jwks.sign(0, `t${n}-${i}`)}` });
    // The window's requests are made before the point's heap baseline; the others as they are presented.
    for (const i of window) wires.set(i, await wireOf(i));
    const windowWires = window.map((i) => wires.get(i)!);
    let signed = wires.size;
    const pt = await h.point(
      n,
      () => h.runtime(oauthConfig(jwks, 1)),
      (rt, i) => h.check(rt, windowWires[i % measured]!),
      {
        // Each round leaves the cache as it found it: all hits when the tokens fit it, and
        // otherwise the window is larger than the cache, so its start was evicted by its end.
        calls: TOKEN_WINDOW,
        warm: async (rt) => {
          await loop(n - warmFrom, async (k) => {
            const i = warmFrom + k;
            let w = wires.get(i);
            if (!w) {
              w = await wireOf(i);
              signed++;
            }
            return h.check(rt, w);
          });
        },
      },
    );
    const signSec = (performance.now() - t0) / 1000;
    if (!warmUp)
      h.log(
        `distinct tokens, ${n}: ${pt.us} µs CPU per Check, heap +${pt.heapMiB} MiB, ArrayBuffers +${pt.arrayBuffersMiB} MiB, RSS ${pt.rssMiB} MiB (${signed} tokens signed and warmed in ${signSec.toFixed(1)} s)`,
      );
    wires.clear();
    return pt;
  });
  return {
    name: 'tokens',
    title: `Distinct tokens (token cache of ${TOKEN_CACHE.toLocaleString('en-US')})`,
    xLabel: 'distinct tokens',
    target: { kind: 'ratio', max: 1.3 },
    series: [{ label: 'Check, tokens round-robin', points }],
  };
}

export function printCheckCurves(curves: Curve[]): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  for (const c of curves) {
    const target = c.target.kind === 'ratio' ? `top ≤ ${c.target.max}× bottom` : `≤ ${c.target.max} µs per item`;
    w(`  ${c.title}, CPU µs per Check (target ${target}):`);
    c.series.forEach((s, i) => {
      const cells = s.points.map(
        (pt) =>
          `${pt.x}: ${pt.us}${pt.usPerItem !== undefined ? ` (${pt.usPerItem}/item)` : ''} [${pt.heapMiB} MiB heap]`,
      );
      w(`    ${s.label.padEnd(28)} ${cells.join('  ')}  ${c.met[i] ? 'met' : 'MISSED'}`);
    });
  }
}

// Whole-Check endpoints go to 100,000: past 1,000 endpoints an endpoint's metric series appear
// with its first event, and the policy's data document gets its own WASM pages above
// policy.maxMemoryPages (docs/performance.md).
const DEFAULT_SIZES = {
  endpoints: [10, 1000, 10_000, 100_000],
  grants: [1, 10, 100, 1000],
  list: [10, 500, 5000],
  issuers: [1, 10, 50],
  tokens: [1000, 10_000, 100_000, 1_000_000],
};

/** --scale-curves: "all", "none", or curves with their sizes ("grants=1,1000 tokens=1000"). */
export function scaleCurves(spec: string): Omit<CheckCurveOptions, 'bundle' | 'log'> {
  if (spec === 'all')
    return {
      endpointCounts: DEFAULT_SIZES.endpoints,
      grantCounts: DEFAULT_SIZES.grants,
      listSizes: DEFAULT_SIZES.list,
      issuerCounts: DEFAULT_SIZES.issuers,
      tokenCounts: DEFAULT_SIZES.tokens,
    };
  const named = new Map<string, number[]>();
  for (const item of spec === 'none' ? [] : spec.split(/\s+/).filter(Boolean)) {
    const [name, sizes] = item.split('=');
    if (!name || !['endpoints', 'grants', 'list', 'issuers', 'tokens'].includes(name))
      throw new Error(`--scale-curves: unknown curve "${name}" (endpoints, grants, list, issuers, tokens)`);
    const list = sizes ? sizes.split(',').map(Number) : DEFAULT_SIZES[name as keyof typeof DEFAULT_SIZES];
    if (list.some((n) => !Number.isInteger(n) || n < 1)) throw new Error(`--scale-curves: bad sizes in "${item}"`);
    named.set(name, list);
  }
  return {
    endpointCounts: named.get('endpoints') ?? [],
    grantCounts: named.get('grants') ?? [],
    listSizes: named.get('list') ?? [],
    issuerCounts: named.get('issuers') ?? [],
    tokenCounts: named.get('tokens') ?? [],
  };
}
