// Envoy's HTTP authorization service (ext_authz `http_service`) on node:http, on its own
// port (listen.extAuthzHttp): each forwarded request runs the same pipeline as a gRPC Check
// (src/ext-authz/http-service.ts reads it and writes the answer). node:http's HTTP/1.1 is the
// lightest transport measured (README "Performance"); Envoy's http_service speaks HTTP/1.1
// by default. Bodies are kept up to limits.maxBodyBytes and counted beyond it (a 413 deny);
// past the gRPC receive limit the connection is closed after the answer.
import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { randomUUID } from 'node:crypto';
import { deny, internalErrorDeny } from '../contracts/outcome.js';
import { httpAuthzAnswer, httpAuthzDecoder, type HttpAuthzAnswer, type HttpAuthzRequest } from './http-service.js';
import { runCheck, type Decoder } from '../pipeline/pipeline.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { Server as TlsServer, TlsOptions } from 'node:tls';
import { maxCheckRequestBytes } from './check.js';

/** How the service listens and serves TLS on this port (src/server/ owns both). */
export interface HttpServiceServerPort {
  /** Listens the node server on "host:port" or "unix:/path"; resolves with the TCP port (0 for a socket). */
  listen(server: Server, address: string): Promise<number>;
  tls?: { serverOptions(): TlsOptions; attach(server: TlsServer, listener: 'ext_authz_http'): void };
}

/** One request being read: its body so far, then the pipeline. */
class PendingCheck implements HttpAuthzRequest {
  readonly method: string;
  readonly url: string;
  readonly rawHeaders: string[];
  readonly httpVersion: string;
  body: Buffer = EMPTY;
  bodyBytes = 0;
  private chunks: Buffer[] | undefined;
  private ended = false;

  constructor(
    private readonly server: HttpAuthzServer,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    this.method = req.method ?? '';
    this.url = req.url ?? '';
    this.rawHeaders = req.rawHeaders;
    this.httpVersion = req.httpVersion;
  }

  data(chunk: Buffer): void {
    this.bodyBytes += chunk.length;
    if (this.bodyBytes > this.server.keepBytes) {
      if (this.bodyBytes > this.server.hardLimitBytes) this.end(true);
      return;
    }
    if (this.body === EMPTY) this.body = chunk;
    else (this.chunks ??= [this.body]).push(chunk);
  }

  end(cut = false): void {
    if (this.ended) return;
    this.ended = true;
    if (this.chunks) this.body = Buffer.concat(this.chunks);
    this.chunks = undefined;
    void this.server.answer(this, cut);
  }
}

const EMPTY = Buffer.alloc(0);
const kCheck = Symbol('pendingCheck');
type Req = IncomingMessage & { [kCheck]?: PendingCheck };

function onData(this: Req, chunk: Buffer): void {
  this[kCheck]!.data(chunk);
}
function onEnd(this: Req): void {
  this[kCheck]!.end();
}

export class HttpAuthzServer {
  readonly keepBytes: number;
  readonly hardLimitBytes: number;
  private readonly server: Server;
  private readonly decode: Decoder<HttpAuthzRequest>;
  private closing = false;

  private readonly listen: HttpServiceServerPort['listen'];

  constructor(
    private readonly runtime: Runtime,
    port: HttpServiceServerPort,
  ) {
    const { tls } = port;
    this.listen = port.listen;
    const { limits } = runtime.config;
    this.keepBytes = limits.maxBodyBytes;
    this.hardLimitBytes = maxCheckRequestBytes(limits);
    this.decode = httpAuthzDecoder(runtime.config.extAuthzHttp);
    // Headers up to the service's own limit reach the pipeline (a 431 deny with a body that
    // says why); node:http's default (16 KiB) would refuse them first, without one.
    const options: ServerOptions = {
      maxHeaderSize: limits.maxHeaderBytes + 16 * 1024,
      keepAliveTimeout: 10 * 60 * 1000,
    };
    const onRequest = (req: IncomingMessage, res: ServerResponse) => this.onRequest(req as Req, res);
    if (tls) {
      const secure = createHttpsServer({ ...options, ...tls.serverOptions() }, onRequest);
      tls.attach(secure, 'ext_authz_http');
      this.server = secure as unknown as Server;
    } else {
      this.server = createServer(options, onRequest);
    }
    // Envoy keeps its connections to the service open: the service does not time them out first.
    this.server.headersTimeout = 60_000;
    this.server.requestTimeout = 0;
  }

  /** Listens on "host:port" or "unix:/path"; resolves with the TCP port (0 for a socket). */
  bind(address: string): Promise<number> {
    return this.listen(this.server, address);
  }

  /** Stops accepting; answers in flight finish (each closing its connection), then `cb`. */
  tryShutdown(cb: () => void): void {
    this.closing = true;
    if (!this.server.listening) {
      cb();
      return;
    }
    this.server.close(() => cb());
    this.server.closeIdleConnections();
  }

  forceShutdown(): void {
    this.closing = true;
    this.server.closeAllConnections();
  }

  private onRequest(req: Req, res: ServerResponse): void {
    req[kCheck] = new PendingCheck(this, req, res);
    req.on('data', onData);
    req.on('end', onEnd);
  }

  /** Runs the pipeline on a request read whole (or cut at the hard limit) and answers. */
  async answer(check: PendingCheck, cut: boolean): Promise<void> {
    let answer: HttpAuthzAnswer;
    try {
      const trace = await runCheck(this.runtime, this.decode, check);
      answer = httpAuthzAnswer(trace.outcome);
    } catch {
      // runCheck never rejects; this is the last line of defence and still a deny.
      answer = httpAuthzAnswer(internalErrorDeny(randomUUID()));
    }
    this.send(check, answer, cut);
  }

  private send(check: PendingCheck, a: HttpAuthzAnswer, cut: boolean): void {
    const { res, req } = check;
    if (res.headersSent || res.destroyed) return;
    const close = cut || this.closing;
    const flat: string[] = [];
    for (const [name, value] of a.headers) flat.push(name, value);
    flat.push('content-length', String(Buffer.byteLength(a.body)));
    if (close) flat.push('connection', 'close');
    try {
      res.writeHead(a.status, flat);
    } catch (err) {
      // A header value HTTP cannot carry (a policy's): denied, never sent half.
      this.runtime.logger.warn(
        { err: { message: (err as Error).message } },
        'an answer could not be written as HTTP; denied',
      );
      const fallback = httpAuthzAnswer(
        deny('internal_error', 'The authorization answer could not be written as HTTP; the request is denied.'),
      );
      const h: string[] = [];
      for (const [name, value] of fallback.headers) h.push(name, value);
      h.push('content-length', String(Buffer.byteLength(fallback.body)), 'connection', 'close');
      res.writeHead(fallback.status, h).end(fallback.body);
      return;
    }
    res.end(a.body);
    if (cut) req.destroy();
  }
}
