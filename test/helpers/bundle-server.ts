// A bundle service on loopback, as OPA's management APIs describe it: GET <prefix>/bundles/<name>
// with ETags (304 on If-None-Match), long polling (`Prefer: wait=N`, answered with OPA's
// long-polling content type), and receivers for decision logs (POST <prefix>/logs, gzip)
// and status reports (POST <prefix>/status). Each agent gets its own prefix (/opa, /mcp) on
// the same server, so one server serves the reference OPA and mcp-authz alike. Faults
// (down, slow, garbage, huge) are switched on per test.
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import type { Socket } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { opaBinary } from '../../src/config/paths.mjs';
import { readBundleArchive } from '../../src/policy/bundle-loader.js';

const LONG_POLL = 'application/vnd.openpolicyagent.bundles';

export type Fault = 'none' | 'slow' | 'garbage' | 'huge' | 'error';

export interface Received {
  agent: string;
  events: Record<string, any>[];
}

export class BundleServer {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private bundle: Buffer | undefined;
  private etag = '';
  private waiters = new Set<() => void>();
  port = 0;
  fault: Fault = 'none';
  /** Decision-log events by agent prefix ("opa", "mcp"). */
  readonly logs = new Map<string, Record<string, any>[]>();
  /** Status reports by agent prefix. */
  readonly statuses = new Map<string, Record<string, any>[]>();
  /** Bundle requests by agent: [status, etag served or asked for]. */
  readonly requests = new Map<string, { status: number; etag: string; prefer?: string; auth?: string }[]>();
  /** Answer decision-log uploads with this status (503: the receiver is failing). */
  logStatus = 204;

  /** HTTPS with this certificate; with `ca`, a client certificate from it is required (mTLS). */
  tls: { cert: string; key: string; ca?: string } | undefined;

  async start(port = 0): Promise<void> {
    const handler = (req: IncomingMessage, res: ServerResponse) => void this.handle(req, res);
    this.server = this.tls
      ? createTlsServer(
          {
            cert: this.tls.cert,
            key: this.tls.key,
            ...(this.tls.ca ? { ca: this.tls.ca, requestCert: true, rejectUnauthorized: true } : {}),
          },
          handler,
        )
      : createServer(handler);
    this.server.on(this.tls ? 'secureConnection' : 'connection', (s: Socket) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as { port: number }).port;
  }

  url(agent: string): string {
    return `${this.tls ? 'https' : 'http'}://127.0.0.1:${this.port}/${agent}`;
  }

  /** Stops listening and drops every connection (the server is down). */
  async stop(): Promise<void> {
    for (const w of this.waiters) w();
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    for (const sock of this.sockets) sock.destroy();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Serves these bytes from now on, waking long polls. */
  publish(bundle: Buffer): void {
    this.bundle = bundle;
    this.etag = `"${createHash('sha256').update(bundle).digest('hex').slice(0, 20)}"`;
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const w of waiters) w();
  }

  get currentEtag(): string {
    return this.etag;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [, agent, ...rest] = (req.url ?? '/').split('?')[0]!.split('/');
    const path = rest.join('/');
    const body = await new Promise<Buffer>((resolve) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks)));
    });
    if (req.method === 'POST' && path === 'logs') {
      if (this.logStatus >= 300) {
        res.writeHead(this.logStatus).end();
        return;
      }
      const raw = req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body;
      const list = this.logs.get(agent!) ?? [];
      list.push(...(JSON.parse(raw.toString('utf8')) as Record<string, any>[]));
      this.logs.set(agent!, list);
      res.writeHead(204).end();
      return;
    }
    if (req.method === 'POST' && path.startsWith('status')) {
      const list = this.statuses.get(agent!) ?? [];
      list.push(JSON.parse(body.toString('utf8')) as Record<string, any>);
      this.statuses.set(agent!, list);
      res.writeHead(200).end();
      return;
    }
    if (req.method !== 'GET' || !path.startsWith('bundles/')) {
      res.writeHead(404).end();
      return;
    }
    const log = this.requests.get(agent!) ?? [];
    this.requests.set(agent!, log);
    const prefer = /wait=(\d+)/.exec(String(req.headers.prefer ?? ''));
    const record = (status: number, etag: string) =>
      log.push({
        status,
        etag,
        ...(req.headers.prefer ? { prefer: String(req.headers.prefer) } : {}),
        ...(req.headers.authorization ? { auth: req.headers.authorization } : {}),
      });
    if (this.fault === 'slow') return; // never answers
    if (this.fault === 'error') {
      record(500, '');
      res.writeHead(500, { 'content-type': 'text/plain' }).end('internal error');
      return;
    }
    if (this.fault === 'garbage') {
      record(200, 'garbage');
      res
        .writeHead(200, { 'content-type': 'application/gzip', etag: '"garbage"' })
        .end(Buffer.from('this is not a bundle at all'));
      return;
    }
    if (this.fault === 'huge') {
      record(200, 'huge');
      // No content-length: the client must stop reading at its own limit.
      res.writeHead(200, { 'content-type': 'application/gzip' });
      const chunk = Buffer.alloc(1024 * 1024, 7);
      let sent = 0;
      const pump = () => {
        while (sent < 512 && res.write(chunk)) sent++;
        if (sent < 512 && !res.destroyed) res.once('drain', pump);
        else res.end();
      };
      res.on('close', () => (sent = 512));
      pump();
      return;
    }
    if (!this.bundle) {
      record(404, '');
      res.writeHead(404).end();
      return;
    }
    if (req.headers['if-none-match'] === this.etag && prefer) {
      // Long polling: hold until a new bundle is published or the wait is over.
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Number(prefer[1]) * 1000);
        this.waiters.add(() => {
          clearTimeout(t);
          resolve();
        });
      });
      if (res.destroyed) return;
    }
    const type = prefer ? LONG_POLL : 'application/gzip';
    if (req.headers['if-none-match'] === this.etag) {
      record(304, this.etag);
      res.writeHead(304, { etag: this.etag, 'content-type': type }).end();
      return;
    }
    record(200, this.etag);
    res
      .writeHead(200, { etag: this.etag, 'content-type': type, 'content-length': String(this.bundle.length) })
      .end(this.bundle);
  }
}

/** Keys for signing bundles with the real opa, in PEM files. */
export interface SigningKeys {
  privateKey: string;
  publicPem: string;
}

/**
 * A policy bundle both agents load: the Rego (for opa, which this build runs without a WASM
 * engine) and the policy.wasm compiled from it (for mcp-authz), with `revision`, built and
 * (with `signingKey`) signed by the real `opa build --bundle --signing-key`.
 */
export function buildPolicyBundle(opts: {
  revision: string;
  allowedTool: string;
  signingKey?: string;
  signingAlg?: string;
  claimsFile?: string;
  dataText?: string;
}): Buffer {
  const opa = opaBinary();
  const rego = [
    'package mcp.authz',
    'import rego.v1',
    'default decision := {"allow": false, "status": 403, "error": "access_denied"}',
    `decision := {"allow": true} if { some c in input.mcp.calls; c.name == "${opts.allowedTool}" }`,
    '',
  ].join('\n');
  const src = mkdtempSync(join(tmpdir(), 'mcp-authz-bundle-src-'));
  writeFileSync(join(src, 'p.rego'), rego);
  const wasmOut = join(src, '..', `${src.split('/').pop()}-wasm.tar.gz`);
  execFileSync(opa, ['build', '-t', 'wasm', '-e', 'mcp/authz/decision', '-o', wasmOut, 'p.rego'], { cwd: src });
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bundle-'));
  writeFileSync(join(dir, 'policy.wasm'), readBundleArchive(wasmOut, readFileSync(wasmOut)).get('policy.wasm')!);
  writeFileSync(join(dir, 'p.rego'), rego);
  // Written by hand: a number literal like 1.0 and an escaped U+2028 test OPA's canonical hashing.
  writeFileSync(join(dir, 'data.json'), opts.dataText ?? '{"settings": {"n": 1.0, "note": "a\\u2028b"}}');
  const out = join(dir, '..', `${dir.split('/').pop()}.tar.gz`);
  execFileSync(
    opa,
    [
      'build',
      '--bundle',
      '-r',
      opts.revision,
      ...(opts.signingKey ? ['--signing-key', opts.signingKey] : []),
      ...(opts.signingAlg ? ['--signing-alg', opts.signingAlg] : []),
      ...(opts.claimsFile ? ['--claims-file', opts.claimsFile] : []),
      '-o',
      out,
      '.',
    ],
    { cwd: dir },
  );
  return readFileSync(out);
}

/** The bundle's files (names without a leading "/"). */
export function bundleFiles(bundle: Buffer): Map<string, Buffer> {
  return readBundleArchive('bundle', bundle);
}

/** A .tar.gz of these files, as `opa build` lays them out ("/name"). */
export function packBundle(files: Map<string, Buffer>): Buffer {
  const blocks: Buffer[] = [];
  for (const [name, content] of files) {
    const h = Buffer.alloc(512);
    h.write(`/${name}`, 0, 100, 'utf8');
    h.write('0000600\0', 100);
    h.write('0000000\0', 108);
    h.write('0000000\0', 116);
    h.write(`${content.length.toString(8).padStart(11, '0')}\0`, 124);
    h.write('00000000000\0', 136);
    h.write('        ', 148);
    h.write('0', 156);
    h.write('ustar\0' + '00', 257);
    let sum = 0;
    for (const b of h) sum += b;
    h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    blocks.push(h, content, Buffer.alloc((512 - (content.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return gzipSync(Buffer.concat(blocks));
}
