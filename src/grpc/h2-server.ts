// The service's own gRPC server, on node:http2. grpc-js costs two to three times what
// Node's HTTP/2 itself costs for a unary call (README "Performance"); this server does what
// the service needs of gRPC and no more:
//   - routing by :path; an unknown method is UNIMPLEMENTED, a non-gRPC content type 415;
//   - unary, server-streaming, client-streaming and bidirectional calls with backpressure
//     (calls.ts), for handlers written against grpc-js's call shapes (`addService`);
//   - a raw unary fast path for Check: the request's bytes in, the answer's bytes out, with
//     no per-call objects beyond one call record (`addRawUnary`);
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
//   - node:cluster workers share the listening socket, as for any node:net server;
//   - TLS and mutual TLS (`tls`), the certificate replaced for new connections on reload;
//     a TCP port or a Unix socket (listen-address.ts).
import { constants, createSecureServer, createServer, type Http2SecureServer, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { MethodDefinition, ServiceDefinition } from '../envoy/proto-root.js';
import { DeadlineQueue, type Deadline } from './deadlines.js';
import { RESPONSE_HEADERS, StreamCall, trailersOnly, UnaryCall, type CallHost } from './calls.js';
import { frame, MAX_TIMEOUT_MS, parseGrpcTimeout, Status, type CallError } from './wire.js';
import { listenOn, type ListenOptions } from '../server/listen-address.js';
import type { PortTls } from '../server/tls-files.js';

export interface H2GrpcServerOptions {
  /** The largest request message accepted (its length prefix says so before it is read). */
  maxReceiveMessageBytes: number;
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
  tls?: PortTls;
}

export const STREAM_RESET_BURST = 10_000;
export const STREAM_RESET_RATE = 1_000;

const DEFAULT_LISTEN: ListenOptions = { socketMode: 0o660 };

/**
 * A raw unary handler: the request message's bytes, and the call to answer on with
 * `reply(bytes)` or `fail(status)`. The call is a plain record, reused for nothing.
 */
export type RawUnaryHandler = (message: Buffer, call: RawUnaryCall) => void;

type Impl = (...args: never[]) => unknown;

interface Route {
  method: MethodDefinition | undefined;
  raw: RawUnaryHandler | undefined;
  impl: Impl | undefined;
}

const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });
const WAIT_FOR_TRAILERS = Object.freeze({ waitForTrailers: true });
const noop = () => undefined;

function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/** One raw unary call: its stream, the message as it arrives, its deadline. */
export class RawUnaryCall implements Deadline {
  done = false;
  private stream: ServerHttp2Stream | undefined;
  private chunk: Buffer | undefined;
  private chunks: Buffer[] | undefined;
  private size = 0;

  constructor(
    stream: ServerHttp2Stream,
    /** The call's request headers (its gRPC metadata). */
    readonly headers: IncomingHttpHeaders,
    private readonly handler: RawUnaryHandler,
    private readonly maxBytes: number,
    readonly at: number,
  ) {
    this.stream = stream;
  }

  /** Answers with one message (the CheckResponse's bytes) and status OK. */
  reply(message: Uint8Array): void {
    const stream = this.stream;
    if (this.done || stream === undefined) return;
    this.release();
    if (stream.destroyed || stream.closed) return;
    stream.respond(RESPONSE_HEADERS, WAIT_FOR_TRAILERS);
    stream.on('wantTrailers', sendOkTrailers);
    stream.end(frame(message));
  }

  /** Ends the call with an error status and no message. */
  fail(status: CallError): void {
    const stream = this.stream;
    if (this.done || stream === undefined) return;
    this.release();
    trailersOnly(stream, status);
  }

  expire(): void {
    const stream = this.stream;
    if (this.done || stream === undefined) return;
    this.release();
    trailersOnly(stream, { code: Status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
  }

  /** A DATA chunk of the request. */
  data(chunk: Buffer): void {
    if (this.done) return;
    this.size += chunk.length;
    if (this.chunk === undefined) {
      // The frame header says how long the message is: refuse it before buffering it.
      if (chunk.length >= 5 && !this.admit(chunk)) return;
      this.chunk = chunk;
    } else {
      (this.chunks ??= [this.chunk]).push(chunk);
    }
    if (this.size > this.maxBytes + 5) this.fail({ code: Status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${this.size - 5} vs. ${this.maxBytes})` });
  }

  /** The request is complete: exactly one message, or the call fails. */
  end(): void {
    if (this.done) return;
    const admitted = this.chunk !== undefined && this.chunk.length >= 5;
    const body = this.chunks ? Buffer.concat(this.chunks, this.size) : this.chunk;
    this.chunk = undefined;
    this.chunks = undefined;
    if (body === undefined || body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
      this.fail({ code: Status.INTERNAL, details: 'A unary call carries exactly one request message' });
      return;
    }
    // A first chunk shorter than a frame header was not checked as it came.
    if (!admitted && !this.admit(body)) return;
    this.handler(body.subarray(5), this);
  }

  /** Checks a frame header: uncompressed, within the limit; else fails the call. */
  private admit(head: Buffer): boolean {
    const flag = head[0]!;
    if (flag !== 0) {
      this.fail({ code: flag === 1 ? Status.UNIMPLEMENTED : Status.INTERNAL, details: flag === 1 ? 'Compressed messages are not accepted (grpc-accept-encoding: identity)' : `Invalid message flag ${flag}` });
      return false;
    }
    const length = head.readUInt32BE(1);
    if (length > this.maxBytes) {
      this.fail({ code: Status.RESOURCE_EXHAUSTED, details: `Received message larger than max (${length} vs. ${this.maxBytes})` });
      return false;
    }
    return true;
  }

  /** The stream closed (answered, reset by the client, or the connection went away). */
  closed(): void {
    this.done = true;
    this.stream = undefined;
    this.chunk = undefined;
    this.chunks = undefined;
  }

  private release(): void {
    this.done = true;
    this.stream = undefined;
  }
}

const kRawCall = Symbol('rawCall');
type RawStream = ServerHttp2Stream & { [kRawCall]?: RawUnaryCall };

function onRawData(this: RawStream, chunk: Buffer): void {
  this[kRawCall]!.data(chunk);
}
function onRawEnd(this: RawStream): void {
  this[kRawCall]!.end();
}
function onRawClose(this: RawStream): void {
  this[kRawCall]!.closed();
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

export class H2GrpcServer implements CallHost {
  readonly maxReceiveMessageBytes: number;
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

  /** Adds a service whose handlers are written for grpc-js (unary callback, stream calls). */
  addService(def: ServiceDefinition, impl: Record<string, Impl>): void {
    for (const [name, method] of Object.entries(def)) {
      const fn = impl[name] ?? impl[method.originalName];
      if (!fn) continue;
      this.routes.set(method.path, { method, raw: undefined, impl: fn });
    }
  }

  /** Adds a unary method answered from bytes to bytes (the Check fast path). */
  addRawUnary(path: string, handler: RawUnaryHandler): void {
    this.routes.set(path, { method: undefined, raw: handler, impl: undefined });
  }

  addDeadline(d: Deadline): void {
    this.deadlines.add(d);
  }

  /** Listens on "host:port" ("[::1]:0" for IPv6) or "unix:/path"; resolves with the TCP port (0 for a socket). */
  bind(address: string, listen: ListenOptions = DEFAULT_LISTEN): Promise<number> {
    return listenOn(this.server, address, listen);
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
    const state: SessionState = { strikes: 0, lastPingAt: 0, lastStreamId: 0, writtenAtPing: 0, unacked: 0, calmed: false, keepalive: undefined };
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
    if (headers[':method'] !== 'POST' || typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
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
    if (route.raw !== undefined) {
      const call = new RawUnaryCall(stream, headers, route.raw, this.maxReceiveMessageBytes, at);
      (stream as RawStream)[kRawCall] = call;
      stream.on('data', onRawData);
      stream.on('end', onRawEnd);
      stream.on('close', onRawClose);
      if (at !== Infinity) this.deadlines.add(call);
      return;
    }
    const method = route.method!;
    const state = { stream, headers, deadlineAt: at };
    if (!method.requestStream && !method.responseStream) {
      new UnaryCall(state, method, route.impl as never, this);
    } else if (!method.requestStream) {
      new StreamCall(state, method, this, route.impl as never);
    } else if (!method.responseStream) {
      // Client streaming: grpc-js hands the stream and a callback for the one answer.
      const call = new StreamCall(state, method, this);
      (route.impl as (call: StreamCall, cb: (err: CallError | Error | null, value?: unknown) => void) => void)(call, (err, value) => {
        if (err) call.destroy(err as Error);
        else {
          call.write(value);
          call.end();
        }
      });
    } else {
      (route.impl as (call: StreamCall) => void)(new StreamCall(state, method, this));
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
