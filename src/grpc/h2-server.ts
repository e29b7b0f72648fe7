// The service's own gRPC server, on node:http2. grpc-js costs two to three times what
// Node's HTTP/2 itself costs for a unary call (docs/performance.md); this server does what
// the service needs of gRPC and no more:
//   - routing by :path; an unknown method is UNIMPLEMENTED, a non-gRPC content type 415;
//   - unary, server-streaming, client-streaming and bidirectional calls with backpressure
//     (calls.ts: one call base, unary and streaming variants), for handlers written against
//     grpc-js's call shapes (`addService`);
//   - a bytes unary fast path for Check: the request's bytes in, the answer's bytes out, with
//     no per-call objects beyond the call (`addBytesUnary`);
//   - grpc-timeout deadlines on one timer (deadlines.ts), DEADLINE_EXCEEDED when they pass;
//   - grpc-status / grpc-message trailers (percent-encoded), trailers-only errors;
//   - the receive limit, checked on each message's length prefix before it is buffered
//     (RESOURCE_EXHAUSTED); compressed messages refused (UNIMPLEMENTED, no compression is
//     offered: grpc-accept-encoding: identity);
//   - keepalive: idle connections are pinged and closed when the ping goes unanswered; a
//     client pinging more often than once a second while the server sends nothing (no new
//     call, no answer) is sent GOAWAY ENHANCE_YOUR_CALM ("too_many_pings") after two such
//     pings, as gRPC servers do — a ping after data is never a strike (grpc-go measures
//     bandwidth with a ping per burst of data it receives);
//   - stream resets: a client may cancel 10,000 calls at once and 1,000 a second (Node's
//     defaults, 1000 and 33, cut Envoy off when it abandons calls in a burst); a rapid-reset
//     flood beyond that ends its connection;
//   - shutdown: the listener closes, every connection gets GOAWAY and its calls finish
//     (tryShutdown), or are cut after the grace period (forceShutdown);
//   - no other GOAWAY: no stream-count, age or idle limit closes a connection; a client's
//     GOAWAY NO_ERROR makes node:http2 close the session gracefully, answering with GOAWAY
//     NO_ERROR (calls in flight still finish; a load generator must not count that answer);
//   - node:cluster workers share the listening socket, as for any node:net server;
//   - TLS and mutual TLS (`tls`), the certificate replaced for new connections on reload;
//     a TCP port or a Unix socket, listened on by the service's `listen`.
import { EventEmitter } from 'node:events';
import {
  constants,
  createSecureServer,
  createServer,
  type Http2SecureServer,
  type Http2Server,
  type IncomingHttpHeaders,
  type SecureServerOptions,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Server } from 'node:net';
import { StreamCall, statusOf, trailersOnly, UnaryCall } from './calls.js';
import { DeadlineQueue } from './deadlines.js';
import {
  addReflectionTo,
  type BytesHandler,
  type GrpcServer,
  type Handler,
  type MethodDefinition,
  type ServiceDefinition,
} from './server.js';
import { MAX_TIMEOUT_MS, parseGrpcTimeout, Status, type CallError } from './wire.js';

/** A port's TLS, as the service keeps it: the options to start with, and the server kept up to date. */
export interface SecurePort {
  serverOptions(): SecureServerOptions;
  attach(server: Http2SecureServer, listener: 'grpc'): void;
}

export interface H2GrpcServerOptions {
  /** The largest request message accepted (its length prefix says so before it is read). */
  maxReceiveMessageBytes: number;
  /** Listens the node server on "host:port" or "unix:/path"; resolves with the TCP port (0 for a socket). */
  listen: (server: Server, address: string) => Promise<number>;
  /** Ping a connection after this long without a ping (default 2 h, as gRPC servers do). */
  keepaliveTimeMs?: number;
  /** Close a connection whose keepalive ping is not answered in this time (default 20 s). */
  keepaliveTimeoutMs?: number;
  /** Client pings closer together than this with no call in between are strikes (default 1 s). */
  minPingIntervalMs?: number;
  /** Strikes allowed before GOAWAY ENHANCE_YOUR_CALM (default 2). */
  maxPingStrikes?: number;
  /** Client stream resets (RST_STREAM) a connection may send at once (default 10,000)… */
  streamResetBurst?: number;
  /** …and per second after that (default 1,000); past both, the connection ends. */
  streamResetRate?: number;
  /** Serve TLS (h2 by ALPN), mutual TLS when the port asks for it. */
  tls?: SecurePort;
}

export const STREAM_RESET_BURST = 10_000;
export const STREAM_RESET_RATE = 1_000;

/** A method's route: unary methods as bytes handlers, streaming ones with their grpc-js-shaped handler. */
interface Route {
  unary: BytesHandler | undefined;
  method: MethodDefinition | undefined;
  impl: Handler | undefined;
}

const noop = () => undefined;

/** A grpc-js-shaped unary handler `(call, callback)` on the bytes path: decode, call, encode. */
function decodedUnary(method: MethodDefinition, impl: Handler): BytesHandler {
  const handler = impl as (call: DecodedUnaryCall, cb: (err: unknown, value?: unknown) => void) => void;
  return (bytes, call) => {
    let request: unknown;
    try {
      request = method.requestDeserialize(bytes);
    } catch {
      call.fail({ code: Status.INTERNAL, details: 'Error deserializing request' });
      return;
    }
    const answer = (err: unknown, value?: unknown) => {
      if (err) {
        call.fail(statusOf(err));
        return;
      }
      let out: Buffer;
      try {
        out = method.responseSerialize(value);
      } catch {
        call.fail({ code: Status.INTERNAL, details: 'Error serializing response' });
        return;
      }
      call.reply(out);
    };
    const decoded = new DecodedUnaryCall(request);
    (call as UnaryCall).onCancel = () => decoded.cancel();
    try {
      handler(decoded, answer);
    } catch (err) {
      answer(err);
    }
  };
}

/** What a grpc-js-shaped unary handler sees: the request, and 'cancelled' when the call is. */
export class DecodedUnaryCall extends EventEmitter {
  cancelled = false;
  constructor(readonly request: unknown) {
    super();
  }
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
  }
}

interface SessionState {
  strikes: number;
  lastPingAt: number;
  lastStreamId: number;
  /** Bytes the server had written when the last ping arrived. */
  writtenAtPing: number;
  /** Pings received whose acknowledgements were not yet seen among the bytes written. */
  unacked: number;
  /** GOAWAY ENHANCE_YOUR_CALM sent: later pings are not counted again. */
  calmed: boolean;
  keepalive: NodeJS.Timeout | undefined;
}

/** A PING ACK on the wire: the 9-byte frame header and 8 bytes of data. */
const PING_ACK_BYTES = 17;
const kSession = Symbol('sessionState');
type Session = ServerHttp2Session & { [kSession]?: SessionState };

export class H2GrpcServer implements GrpcServer {
  readonly maxReceiveMessageBytes: number;
  private readonly listen: H2GrpcServerOptions['listen'];
  private readonly routes = new Map<string, Route>();
  private readonly sessions = new Set<Session>();
  private readonly deadlines = new DeadlineQueue();
  private readonly server: Http2Server | Http2SecureServer;
  private readonly keepaliveTimeMs: number;
  private readonly keepaliveTimeoutMs: number;
  private readonly minPingIntervalMs: number;
  private readonly maxPingStrikes: number;
  private shuttingDown = false;

  constructor(opts: H2GrpcServerOptions) {
    this.maxReceiveMessageBytes = opts.maxReceiveMessageBytes;
    this.listen = opts.listen;
    this.keepaliveTimeMs = opts.keepaliveTimeMs ?? 2 * 60 * 60 * 1000;
    this.keepaliveTimeoutMs = opts.keepaliveTimeoutMs ?? 20_000;
    this.minPingIntervalMs = opts.minPingIntervalMs ?? 1000;
    this.maxPingStrikes = opts.maxPingStrikes ?? 2;
    // Node refuses new streams once a session buffers more than maxSessionMemory (10 MB by
    // default); a request may legitimately be larger.
    const base = {
      maxSessionMemory: Math.max(64, Math.ceil((opts.maxReceiveMessageBytes * 2) / 1e6)),
      // Node ends a connection with GOAWAY INTERNAL_ERROR past 1000 RST_STREAMs at once and 33
      // a second (its rapid-reset defence). Envoy cancels every Check it stops waiting for, so
      // a stall past its ext_authz timeout alone exceeds that, and the connection's other
      // calls fail with it. Calls here cost what they cost whether reset or not (no stream
      // limit to slip past): the bound stays, for floods only.
      streamResetBurst: opts.streamResetBurst ?? STREAM_RESET_BURST,
      streamResetRate: opts.streamResetRate ?? STREAM_RESET_RATE,
    };
    if (opts.tls) {
      // ALPN h2 only (allowHTTP1 false): gRPC runs on HTTP/2.
      const secure = createSecureServer({ ...base, ...opts.tls.serverOptions() });
      opts.tls.attach(secure, 'grpc');
      this.server = secure;
    } else {
      this.server = createServer(base);
    }
    const server = this.server as Http2Server;
    server.on('stream', (stream, headers) => this.onStream(stream, headers));
    server.on('session', (s) => this.onSession(s));
    server.on('sessionError', noop);
  }

  addService(def: ServiceDefinition, impl: Record<string, Handler>): void {
    for (const [name, method] of Object.entries(def)) {
      const fn = impl[name] ?? impl[method.originalName];
      if (!fn) continue;
      const unary = !method.requestStream && !method.responseStream;
      this.routes.set(
        method.path,
        unary
          ? { unary: decodedUnary(method, fn), method: undefined, impl: undefined }
          : { unary: undefined, method, impl: fn },
      );
    }
  }

  addBytesUnary(path: string, handler: BytesHandler): void {
    this.routes.set(path, { unary: handler, method: undefined, impl: undefined });
  }

  addReflection(packages: object): Promise<void> {
    return addReflectionTo(this, packages);
  }

  bind(address: string): Promise<number> {
    return this.listen(this.server, address);
  }

  /** Stops accepting connections; every connection gets GOAWAY, its calls finish, then `cb`. */
  tryShutdown(cb: () => void): void {
    this.shuttingDown = true;
    let pending = 1 + this.sessions.size;
    const done = () => {
      if (--pending === 0) {
        this.deadlines.clear();
        cb();
      }
    };
    if (this.server.listening) this.server.close(() => done());
    else done();
    for (const s of this.sessions) this.closeSession(s, done);
  }

  /** Cuts every connection now (after the grace period). */
  forceShutdown(): void {
    this.shuttingDown = true;
    if (this.server.listening) this.server.close();
    for (const s of this.sessions) s.destroy(undefined, constants.NGHTTP2_CANCEL);
    this.sessions.clear();
    this.deadlines.clear();
  }

  private closeSession(s: Session, done: () => void): void {
    if (s.closed || s.destroyed) {
      done();
      return;
    }
    try {
      // The first GOAWAY (last stream id 2^31 - 1) warns the client off; close() sends the
      // final one with the last stream processed once the calls in flight are over.
      s.goaway(constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
    } catch {
      // already going away
    }
    s.close(done);
  }

  private onSession(s: Session): void {
    if (this.shuttingDown) {
      s.destroy();
      return;
    }
    this.sessions.add(s);
    const state: SessionState = {
      strikes: 0,
      lastPingAt: 0,
      lastStreamId: 0,
      writtenAtPing: 0,
      unacked: 0,
      calmed: false,
      keepalive: undefined,
    };
    s[kSession] = state;
    s.on('error', noop);
    s.on('ping', onPing.bind(s, this.minPingIntervalMs, this.maxPingStrikes));
    s.once('close', () => {
      this.sessions.delete(s);
      if (state.keepalive) clearInterval(state.keepalive);
    });
    if (this.keepaliveTimeMs > 0 && this.keepaliveTimeMs < MAX_TIMEOUT_MS) {
      state.keepalive = setInterval(keepalivePing, this.keepaliveTimeMs, s, this.keepaliveTimeoutMs);
      state.keepalive.unref();
    }
  }

  private onStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): void {
    stream.on('error', noop); // a reset by the client ends the call; there is no one to answer
    const contentType = headers['content-type'];
    if (
      headers[':method'] !== 'POST' ||
      typeof contentType !== 'string' ||
      !contentType.startsWith('application/grpc')
    ) {
      stream.respond({ ':status': 415 }, { endStream: true });
      return;
    }
    const path = headers[':path'] ?? '';
    const route = this.routes.get(path);
    if (route === undefined) {
      trailersOnly(stream, { code: Status.UNIMPLEMENTED, details: `The server does not implement the method ${path}` });
      return;
    }
    let at = Infinity;
    const timeout = headers['grpc-timeout'];
    if (timeout !== undefined) {
      const ms = parseGrpcTimeout(timeout as string);
      if (Number.isNaN(ms)) {
        trailersOnly(stream, { code: Status.INTERNAL, details: `Invalid grpc-timeout value "${timeout as string}"` });
        return;
      }
      if (ms < MAX_TIMEOUT_MS) at = performance.now() + ms;
    }
    const max = this.maxReceiveMessageBytes;
    if (route.unary !== undefined) {
      new UnaryCall(stream, headers, at, max, this.deadlines, route.unary);
      return;
    }
    const method = route.method!;
    if (!method.requestStream) {
      new StreamCall(stream, headers, at, max, this.deadlines, method, route.impl as never);
    } else if (!method.responseStream) {
      // Client streaming: grpc-js hands the stream and a callback for the one answer.
      const call = new StreamCall(stream, headers, at, max, this.deadlines, method);
      (route.impl as (call: StreamCall, cb: (err: CallError | Error | null, value?: unknown) => void) => void)(
        call,
        (err, value) => {
          if (err) call.destroy(err as Error);
          else {
            call.write(value);
            call.end();
          }
        },
      );
    } else {
      (route.impl as (call: StreamCall) => void)(new StreamCall(stream, headers, at, max, this.deadlines, method));
    }
  }
}

/**
 * Client pings: answered by node:http2. A ping is a strike only when it comes sooner than
 * minIntervalMs after the last one and the server has sent nothing since but that ping's
 * acknowledgement — no new call, no answer — as grpc-go and gRPC's C core count them; too
 * many strikes end the connection, once.
 */
function onPing(this: Session, minIntervalMs: number, maxStrikes: number): void {
  const state = this[kSession];
  if (!state || state.calmed) return;
  const now = performance.now();
  const lastStreamId = this.state.lastProcStreamID ?? 0;
  // Bytes written since the last ping, less the acknowledgements of pings before this one
  // (node:http2 writes those itself, sometimes several at once): anything left is the server
  // sending frames of its own.
  const written = this.socket?.bytesWritten ?? 0;
  const since = written - state.writtenAtPing;
  const acks = Math.min(state.unacked, Math.floor(since / PING_ACK_BYTES));
  state.unacked += 1 - acks;
  const sent = since - acks * PING_ACK_BYTES > 0;
  state.writtenAtPing = written;
  if (lastStreamId !== state.lastStreamId || sent) {
    state.lastStreamId = lastStreamId;
    state.strikes = 0;
  } else if (now - state.lastPingAt < minIntervalMs && ++state.strikes > maxStrikes) {
    state.calmed = true;
    this.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM, lastStreamId, Buffer.from('too_many_pings'));
    this.close();
  }
  state.lastPingAt = now;
}

function keepalivePing(s: Session, timeoutMs: number): void {
  if (s.closed || s.destroyed) return;
  const timer = setTimeout(() => s.destroy(), timeoutMs);
  timer.unref();
  try {
    s.ping((err) => {
      clearTimeout(timer);
      if (err) s.destroy();
    });
  } catch {
    clearTimeout(timer);
    s.destroy();
  }
}
