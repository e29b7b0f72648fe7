// The calls of the service's own gRPC server (h2-server.ts). One base, `Call`, does what every
// call on an HTTP/2 stream does the same way: reads the request's frames under the receive
// limit (one FrameReader), keeps the deadline, ends the call with its status exactly once
// (trailers after what was sent, or a trailers-only answer), and notices the client going.
// Two variants: a unary call, bytes in and bytes out (`reply`, `fail`), and a stream call — an
// object-mode Duplex, as grpc-js's — for server-streaming (`request`, then write/end),
// client-streaming and bidirectional calls (messages in as 'data' events, out with
// write/end). Backpressure runs both ways on a stream: a write returns false while HTTP/2
// flow control holds the last message back ('drain' follows), and a reader that stops reading
// (pause, or a full buffer) stops the stream, so the peer's window closes instead of memory
// growing.
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { Duplex } from 'node:stream';
import type { Deadline } from './deadlines.js';
import type { BytesCall, BytesHandler, MethodDefinition } from './server.js';
import { encodeGrpcMessage, FrameReader, frame, isCallError, Status, type CallError } from './wire.js';

/** Headers of every answer: the protocol's content type; no compression. */
export const RESPONSE_HEADERS = Object.freeze({
  ':status': 200,
  'content-type': 'application/grpc',
  'grpc-accept-encoding': 'identity',
});
const WAIT_FOR_TRAILERS = Object.freeze({ waitForTrailers: true });
const END_STREAM = Object.freeze({ endStream: true });
const OK_TRAILERS = Object.freeze({ 'grpc-status': '0' });
const OK: CallError = Object.freeze({ code: Status.OK, details: 'OK' });
const DEADLINE: CallError = Object.freeze({ code: Status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' });
const ONE_MESSAGE: CallError = Object.freeze({
  code: Status.INTERNAL,
  details: 'A unary call carries exactly one request message',
});

/** Ends a call that sent nothing yet with its status alone (a trailers-only answer). */
export function trailersOnly(stream: ServerHttp2Stream, status: CallError): void {
  if (stream.destroyed || stream.closed || stream.headersSent) return;
  stream.respond(
    { ...RESPONSE_HEADERS, 'grpc-status': String(status.code), 'grpc-message': encodeGrpcMessage(status.details) },
    END_STREAM,
  );
}

/** An error a handler ends a call with, as a status: its own, or UNKNOWN with its message. */
export function statusOf(err: unknown): CallError {
  return isCallError(err) ? err : { code: Status.UNKNOWN, details: (err as Error | undefined)?.message ?? String(err) };
}

/** Where a call queues its deadline (the server's one timer). */
export interface DeadlineHost {
  add(d: Deadline): void;
}

const kCall = Symbol('call');
type CallStream = ServerHttp2Stream & { [kCall]?: Call };

// One set of listeners for every call (no closures per call): the stream knows its call.
function onCallData(this: CallStream, chunk: Buffer): void {
  this[kCall]!.data(chunk);
}
function onCallEnd(this: CallStream): void {
  this[kCall]!.end();
}
function onCallClose(this: CallStream): void {
  this[kCall]!.closed();
}
function sendOkTrailers(this: ServerHttp2Stream): void {
  this.sendTrailers(OK_TRAILERS);
}

/** What every call on one HTTP/2 stream does: frames in under the limit, the deadline, the status once. */
export abstract class Call implements Deadline {
  /** The status has been sent, or the stream is gone: nothing more happens on the call. */
  done = false;
  /** Response headers have gone out: a status now goes in trailers. */
  headersSent = false;
  protected stream: ServerHttp2Stream | undefined;
  private readonly reader: FrameReader;

  constructor(
    stream: ServerHttp2Stream,
    /** The call's request headers (its gRPC metadata). */
    readonly headers: IncomingHttpHeaders,
    /** performance.now() at which the call is late; Infinity without a deadline. */
    readonly at: number,
    maxReceiveMessageBytes: number,
    deadlines: DeadlineHost,
  ) {
    this.stream = stream;
    this.reader = new FrameReader(maxReceiveMessageBytes);
    (stream as CallStream)[kCall] = this;
    stream.on('data', onCallData);
    stream.on('end', onCallEnd);
    stream.on('close', onCallClose);
    if (at !== Infinity) deadlines.add(this);
  }

  /** A request message, whole. */
  protected abstract message(bytes: Buffer): void;
  /** The request is over; `whole` is false when it ended inside a message. */
  protected abstract ended(whole: boolean): void;
  /** The call will not be answered: its deadline passed, or the client went. */
  protected abstract cancel(): void;

  /** A DATA chunk of the request. */
  data(chunk: Buffer): void {
    if (this.done) return;
    try {
      this.reader.push(chunk, this.deliver, this);
    } catch (err) {
      this.finish(err as CallError);
    }
  }

  end(): void {
    if (!this.done) this.ended(this.reader.idle);
  }

  private deliver(bytes: Buffer): void {
    if (!this.done) this.message(bytes);
  }

  expire(): void {
    if (this.done) return;
    this.finish(DEADLINE);
    this.cancel();
  }

  /** The stream closed (answered, reset by the client, or the connection went away). */
  closed(): void {
    this.stream = undefined;
    if (this.done) return;
    this.done = true;
    this.cancel();
  }

  /** Sends the response headers, once, before the first message. */
  protected respondHeaders(stream: ServerHttp2Stream): void {
    if (this.headersSent) return;
    this.headersSent = true;
    stream.respond(RESPONSE_HEADERS, WAIT_FOR_TRAILERS);
  }

  /** Ends the call with `status`, once: in trailers after what was sent, or trailers-only. */
  finish(status: CallError): void {
    if (this.done) return;
    this.done = true;
    const stream = this.stream;
    if (stream === undefined || stream.destroyed || stream.closed) return;
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
}

/** A unary call: one message in (its bytes), one out — `reply(bytes)` — or a status — `fail`. */
export class UnaryCall extends Call implements BytesCall {
  /** Told when the call is cancelled (deadline, client gone); the decoded unary path sets it. */
  onCancel: (() => void) | undefined = undefined;
  private request: Buffer | undefined = undefined;

  constructor(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    at: number,
    maxReceiveMessageBytes: number,
    deadlines: DeadlineHost,
    private readonly handler: BytesHandler,
  ) {
    super(stream, headers, at, maxReceiveMessageBytes, deadlines);
  }

  header(name: string): string | undefined {
    const v = this.headers[name];
    return typeof v === 'string' ? v : v?.[0];
  }

  reply(message: Uint8Array): void {
    const stream = this.stream;
    if (this.done || stream === undefined) return;
    this.done = true;
    if (stream.destroyed || stream.closed) return;
    this.respondHeaders(stream);
    stream.on('wantTrailers', sendOkTrailers);
    stream.end(frame(message));
  }

  fail(status: CallError): void {
    this.finish(status);
  }

  protected message(bytes: Buffer): void {
    if (this.request !== undefined) this.finish(ONE_MESSAGE);
    else this.request = bytes;
  }

  protected ended(whole: boolean): void {
    const request = this.request;
    this.request = undefined;
    if (!whole || request === undefined) this.finish(ONE_MESSAGE);
    else this.handler(request, this);
  }

  protected cancel(): void {
    this.onCancel?.();
  }
}

/**
 * A streaming call (grpc-js's ServerWritableStream, ServerReadableStream and
 * ServerDuplexStream in one): an object-mode Duplex of messages, on a `Call` of its own.
 */
export class StreamCall extends Duplex {
  /** The request of a server-streaming call. */
  request: unknown = undefined;
  cancelled = false;
  private readonly call: StreamCallCore;
  /** The status end() sends: OK, or the error the handler emitted. */
  private pendingStatus: CallError = OK;
  /** Backpressure on the way in: the stream is paused until the reader reads again. */
  private inboundPaused = false;

  constructor(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    at: number,
    maxReceiveMessageBytes: number,
    deadlines: DeadlineHost,
    private readonly method: MethodDefinition,
    /** Server streaming: called with the one request once it has arrived. */
    private readonly onRequest?: (call: StreamCall) => void,
  ) {
    super({ objectMode: true, allowHalfOpen: true });
    this.call = new StreamCallCore(this, stream, headers, at, maxReceiveMessageBytes, deadlines);
    // grpc-js's way to end a call with an error: emit it, or destroy with it.
    this.on('error', (err: unknown) => {
      this.pendingStatus = statusOf(err);
      this.call.finish(this.pendingStatus);
    });
  }

  get done(): boolean {
    return this.call.done;
  }

  /** The HTTP/2 stream under the call, while it is open. */
  get http2Stream(): ServerHttp2Stream | undefined {
    return this.call.http2Stream;
  }

  override _read(): void {
    if (this.inboundPaused) {
      this.inboundPaused = false;
      this.call.http2Stream?.resume();
    }
  }

  override _write(message: unknown, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const stream = this.call.http2Stream;
    if (this.call.done || stream === undefined || stream.destroyed || stream.closed) {
      cb(); // the call is over (cancelled, or ended with an error): the message goes nowhere
      return;
    }
    let bytes: Buffer;
    try {
      bytes = this.method.responseSerialize(message);
    } catch {
      this.call.finish({ code: Status.INTERNAL, details: 'Error serializing response' });
      cb();
      return;
    }
    this.call.sendHeaders(stream);
    if (stream.write(frame(bytes))) cb();
    else stream.once('drain', () => cb());
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.call.finish(this.pendingStatus);
    cb();
  }

  override _destroy(err: Error | null, cb: (err: Error | null) => void): void {
    if (!this.call.done)
      this.call.finish(err ? statusOf(err) : { code: Status.CANCELLED, details: 'Cancelled by the server' });
    cb(null);
  }

  /** A request message (from the call). */
  received(bytes: Buffer): void {
    let message: unknown;
    try {
      message = this.method.requestDeserialize(bytes);
    } catch {
      this.call.finish({ code: Status.INTERNAL, details: 'Error deserializing request' });
      return;
    }
    if (this.onRequest) {
      if (this.request !== undefined) {
        this.call.finish({
          code: Status.INTERNAL,
          details: 'A server-streaming call carries exactly one request message',
        });
        return;
      }
      this.request = message;
      return;
    }
    if (!this.push(message) && !this.inboundPaused) {
      this.inboundPaused = true;
      this.call.http2Stream?.pause();
    }
  }

  /** The request is over (from the call). */
  over(whole: boolean): void {
    if (!whole) {
      this.call.finish({ code: Status.INTERNAL, details: 'The request ended inside a message' });
      return;
    }
    if (this.onRequest) {
      if (this.request === undefined) {
        this.call.finish({
          code: Status.INTERNAL,
          details: 'A server-streaming call carries exactly one request message',
        });
        return;
      }
      this.push(null);
      this.onRequest(this);
      return;
    }
    this.push(null);
  }

  /** Cancelled (from the call): the handler is told; the Duplex is torn down once the stream closes. */
  stopped(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.emit('cancelled');
  }

  /** The HTTP/2 stream closed (from the call). */
  streamClosed(): void {
    if (!this.destroyed) this.destroy();
  }
}

/** The Call under a StreamCall: the base's lifecycle, the messages handed to the Duplex. */
class StreamCallCore extends Call {
  constructor(
    private readonly owner: StreamCall,
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    at: number,
    maxReceiveMessageBytes: number,
    deadlines: DeadlineHost,
  ) {
    super(stream, headers, at, maxReceiveMessageBytes, deadlines);
  }

  get http2Stream(): ServerHttp2Stream | undefined {
    return this.stream;
  }

  sendHeaders(stream: ServerHttp2Stream): void {
    this.respondHeaders(stream);
  }

  override closed(): void {
    super.closed();
    this.owner.streamClosed();
  }

  protected message(bytes: Buffer): void {
    this.owner.received(bytes);
  }

  protected ended(whole: boolean): void {
    this.owner.over(whole);
  }

  protected cancel(): void {
    this.owner.stopped();
  }
}
