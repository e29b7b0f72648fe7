// The calls of the service's own gRPC server (h2-server.ts), shaped as grpc-js's server
// calls so one handler serves on either server: a unary call (`request`, a callback), and a
// stream call — an object-mode Duplex, as grpc-js's — for server-streaming (`request`, then
// write/end), client-streaming and bidirectional calls (messages in as 'data' events, out with
// write/end). Backpressure runs both ways: a write returns false while HTTP/2 flow control
// holds the last message back ('drain' follows), and a reader that stops reading (pause, or
// a full buffer) stops the stream, so the peer's window closes instead of memory growing.
import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { Duplex } from 'node:stream';
import type { MethodDefinition } from '../envoy/proto-root.js';
import type { Deadline } from './deadlines.js';
import { encodeGrpcMessage, FrameError, FrameReader, frame, isCallError, Status, type CallError } from './wire.js';

/** Headers of every answer: the protocol's content type; no compression. */
export const RESPONSE_HEADERS = Object.freeze({ ':status': 200, 'content-type': 'application/grpc', 'grpc-accept-encoding': 'identity' });
const WAIT_FOR_TRAILERS = Object.freeze({ waitForTrailers: true });
const END_STREAM = Object.freeze({ endStream: true });

/** Ends a call that sent nothing yet with its status alone (a trailers-only answer). */
export function trailersOnly(stream: ServerHttp2Stream, status: CallError): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  stream.respond({ ...RESPONSE_HEADERS, 'grpc-status': String(status.code), 'grpc-message': encodeGrpcMessage(status.details) }, END_STREAM);
}

/** The request metadata a handler may read (grpc-js's Metadata, reading only). */
export class RequestMetadata {
  constructor(private readonly headers: IncomingHttpHeaders) {}

  get(name: string): string[] {
    const v = this.headers[name.toLowerCase()];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  }

  getMap(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(this.headers)) if (!k.startsWith(':') && v !== undefined) out[k] = Array.isArray(v) ? v.join(', ') : v;
    return out;
  }
}

/** What a call needs from its server. */
export interface CallHost {
  maxReceiveMessageBytes: number;
  /** Queues a deadline (the server's one timer); absent when the call has none. */
  addDeadline(d: Deadline): void;
}

/** Common state of a call on one HTTP/2 stream. */
interface CallState {
  stream: ServerHttp2Stream;
  headers: IncomingHttpHeaders;
  deadlineAt: number;
}

function peerOf(stream: ServerHttp2Stream): string {
  const s = stream.session?.socket;
  return s?.remoteAddress ? (s.remotePort ? `${s.remoteAddress}:${s.remotePort}` : s.remoteAddress) : 'unknown';
}

/** Date.now()-based deadline, as grpc-js's getDeadline() returns it. */
function wallDeadline(deadlineAt: number): number {
  return deadlineAt === Infinity ? Infinity : Date.now() + (deadlineAt - performance.now());
}

type UnaryHandler = (call: UnaryCall, callback: (err: CallError | Error | null, value?: unknown) => void) => void;

/** A unary call: one message in, one out (grpc-js's ServerUnaryCall). */
export class UnaryCall extends EventEmitter implements Deadline {
  request: unknown = undefined;
  readonly metadata: RequestMetadata;
  cancelled = false;
  done = false;
  readonly at: number;
  private readonly reader: FrameReader;
  private messages = 0;
  private readonly stream: ServerHttp2Stream;

  constructor(
    private readonly state: CallState,
    private readonly method: MethodDefinition,
    private readonly handler: UnaryHandler,
    host: CallHost,
  ) {
    super();
    this.stream = state.stream;
    this.at = state.deadlineAt;
    this.metadata = new RequestMetadata(state.headers);
    this.reader = new FrameReader(host.maxReceiveMessageBytes);
    this.stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.stream.on('end', () => this.onEnd());
    this.stream.once('close', () => this.onClose());
    if (this.at !== Infinity) host.addDeadline(this);
  }

  getPeer(): string {
    return peerOf(this.stream);
  }

  getDeadline(): number {
    return wallDeadline(this.at);
  }

  getPath(): string {
    return this.method.path;
  }

  expire(): void {
    this.finish({ code: Status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
  }

  private onData(chunk: Buffer): void {
    if (this.done) return;
    try {
      this.reader.push(chunk, (m) => {
        this.messages++;
        if (this.messages === 1) this.request = m;
      });
      if (this.messages > 1) this.finish({ code: Status.INTERNAL, details: 'A unary call carries exactly one request message' });
    } catch (err) {
      this.finish(err as FrameError);
    }
  }

  private onEnd(): void {
    if (this.done) return;
    if (this.messages !== 1 || !this.reader.idle) {
      this.finish({ code: Status.INTERNAL, details: 'A unary call carries exactly one request message' });
      return;
    }
    try {
      this.request = this.method.requestDeserialize(this.request as Buffer);
    } catch {
      this.finish({ code: Status.INTERNAL, details: 'Error deserializing request' });
      return;
    }
    try {
      this.handler(this, (err, value) => this.answer(err, value));
    } catch (err) {
      this.answer(err as Error, undefined);
    }
  }

  private answer(err: CallError | Error | null, value: unknown): void {
    if (this.done) return;
    if (err) {
      this.finish(isCallError(err) ? err : { code: Status.UNKNOWN, details: err.message });
      return;
    }
    let bytes: Buffer;
    try {
      bytes = this.method.responseSerialize(value);
    } catch {
      this.finish({ code: Status.INTERNAL, details: 'Error serializing response' });
      return;
    }
    this.done = true;
    const { stream } = this;
    if (stream.destroyed || stream.closed) return;
    stream.respond(RESPONSE_HEADERS, WAIT_FOR_TRAILERS);
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
    stream.end(frame(bytes));
  }

  private finish(status: CallError): void {
    if (this.done) return;
    this.done = true;
    trailersOnly(this.stream, status);
    if (status.code === Status.DEADLINE_EXCEEDED) this.cancel();
  }

  private onClose(): void {
    if (!this.done) {
      this.done = true;
      this.cancel();
    }
  }

  private cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
  }
}

/**
 * A streaming call (grpc-js's ServerWritableStream, ServerReadableStream and
 * ServerDuplexStream in one): an object-mode Duplex of messages.
 */
export class StreamCall extends Duplex implements Deadline {
  /** The request of a server-streaming call. */
  request: unknown = undefined;
  readonly metadata: RequestMetadata;
  cancelled = false;
  done = false;
  readonly at: number;
  private readonly stream: ServerHttp2Stream;
  private readonly reader: FrameReader;
  private headersSent = false;
  private statusSent = false;
  /** The status end() sends: OK, or the error the handler emitted. */
  private pendingStatus: CallError = { code: Status.OK, details: 'OK' };
  /** Backpressure on the way in: the stream is paused until the reader reads again. */
  private inboundPaused = false;

  constructor(
    state: CallState,
    private readonly method: MethodDefinition,
    host: CallHost,
    /** Server streaming: called with the one request once it has arrived. */
    private readonly onRequest?: (call: StreamCall) => void,
  ) {
    super({ objectMode: true, allowHalfOpen: true });
    this.stream = state.stream;
    this.at = state.deadlineAt;
    this.metadata = new RequestMetadata(state.headers);
    this.reader = new FrameReader(host.maxReceiveMessageBytes);
    this.stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.stream.on('end', () => this.onEnd());
    this.stream.once('close', () => this.onClose());
    // grpc-js's way to end a call with an error: emit it, or destroy with it.
    this.on('error', (err: unknown) => {
      this.pendingStatus = isCallError(err) ? err : { code: Status.UNKNOWN, details: (err as Error)?.message ?? String(err) };
      this.sendStatus(this.pendingStatus);
    });
    if (this.at !== Infinity) host.addDeadline(this);
  }

  getPeer(): string {
    return peerOf(this.stream);
  }

  getDeadline(): number {
    return wallDeadline(this.at);
  }

  getPath(): string {
    return this.method.path;
  }

  /** Sends the response headers now (grpc-js's sendMetadata; the first write does it otherwise). */
  sendMetadata(): void {
    this.respondHeaders();
  }

  /** grpc-js takes trailing metadata in end(); this server sends none. */
  override end(...args: unknown[]): this {
    if (typeof args[0] === 'function') return super.end(args[0] as () => void);
    return super.end();
  }

  expire(): void {
    this.sendStatus({ code: Status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
    this.cancel();
  }

  override _read(): void {
    if (this.inboundPaused) {
      this.inboundPaused = false;
      this.stream.resume();
    }
  }

  override _write(message: unknown, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.statusSent || this.stream.destroyed || this.stream.closed) {
      cb(); // the call is over (cancelled, or ended with an error): the message goes nowhere
      return;
    }
    let bytes: Buffer;
    try {
      bytes = this.method.responseSerialize(message);
    } catch {
      this.sendStatus({ code: Status.INTERNAL, details: 'Error serializing response' });
      cb();
      return;
    }
    this.respondHeaders();
    if (this.stream.write(frame(bytes))) cb();
    else this.stream.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.sendStatus(this.pendingStatus);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (!this.statusSent) this.sendStatus(err ? (isCallError(err) ? err : { code: Status.UNKNOWN, details: err.message }) : { code: Status.CANCELLED, details: 'Cancelled by the server' });
    cb(null);
  }

  private respondHeaders(): void {
    if (this.headersSent || this.stream.destroyed || this.stream.closed) return;
    this.headersSent = true;
    this.stream.respond(RESPONSE_HEADERS, WAIT_FOR_TRAILERS);
  }

  private sendStatus(status: CallError): void {
    if (this.statusSent) return;
    this.statusSent = true;
    this.done = true;
    const { stream } = this;
    if (stream.destroyed || stream.closed) return;
    if (!this.headersSent) {
      trailersOnly(stream, status);
    } else {
      const trailers = { 'grpc-status': String(status.code), 'grpc-message': encodeGrpcMessage(status.details) };
      stream.once('wantTrailers', () => stream.sendTrailers(trailers));
      stream.end();
    }
    // What the peer still sends is read and dropped; a client stops once it has the status.
    // No RST_STREAM here: sent before the trailers have gone out, it would replace the status
    // (grpc-go then reports INTERNAL "stream terminated by RST_STREAM").
    if (!stream.readableEnded) stream.resume();
  }

  private onData(chunk: Buffer): void {
    if (this.statusSent) return;
    try {
      this.reader.push(chunk, (m) => this.onMessage(m));
    } catch (err) {
      this.sendStatus(err as FrameError);
    }
  }

  private onMessage(bytes: Buffer): void {
    if (this.statusSent) return;
    let message: unknown;
    try {
      message = this.method.requestDeserialize(bytes);
    } catch {
      this.sendStatus({ code: Status.INTERNAL, details: 'Error deserializing request' });
      return;
    }
    if (this.onRequest) {
      if (this.request !== undefined) {
        this.sendStatus({ code: Status.INTERNAL, details: 'A server-streaming call carries exactly one request message' });
        return;
      }
      this.request = message;
      return;
    }
    if (!this.push(message) && !this.inboundPaused) {
      this.inboundPaused = true;
      this.stream.pause();
    }
  }

  private onEnd(): void {
    if (this.statusSent) return;
    if (!this.reader.idle) {
      this.sendStatus({ code: Status.INTERNAL, details: 'The request ended inside a message' });
      return;
    }
    if (this.onRequest) {
      if (this.request === undefined) {
        this.sendStatus({ code: Status.INTERNAL, details: 'A server-streaming call carries exactly one request message' });
        return;
      }
      this.push(null);
      this.onRequest(this);
      return;
    }
    this.push(null);
  }

  private onClose(): void {
    if (!this.statusSent) {
      this.statusSent = true;
      this.done = true;
      this.cancel();
    }
    if (!this.destroyed) this.destroy();
  }

  private cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
  }
}
