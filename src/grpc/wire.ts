// gRPC over HTTP/2, the parts the service's own server needs (the gRPC protocol's
// "PROTOCOL-HTTP2" document): status codes, the length-prefixed message frame, an
// incremental reader of frames, grpc-timeout and the percent-encoded grpc-message.

/** gRPC status codes (the protocol's numbers; google.rpc.Code is the same table). The one table of them. */
export const Status = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type StatusName = keyof typeof Status;
export type StatusCode = (typeof Status)[StatusName];

/** A status code's name ("INTERNAL" for 13). */
export const statusName = (code: StatusCode): StatusName => STATUS_NAMES[code];
const STATUS_NAMES = Object.fromEntries(Object.entries(Status).map(([name, code]) => [code, name])) as Record<
  StatusCode,
  StatusName
>;

/** An error a handler or the server ends a call with: grpc-status and grpc-message. */
export interface CallError {
  code: number;
  details: string;
}

export function isCallError(e: unknown): e is CallError {
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof (e as CallError).code === 'number' &&
    Number.isInteger((e as CallError).code)
  );
}

export const FRAME_HEADER_BYTES = 5;

/** A message in its frame: flag byte 0 (not compressed), big-endian length, the message. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, FRAME_HEADER_BYTES);
  return out;
}

/** Thrown by the frame reader; the call ends with this status. */
export class FrameError extends Error implements CallError {
  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(details);
  }
}

/**
 * Reads length-prefixed messages from DATA chunks as they arrive. Refuses a message larger
 * than the limit as soon as its header says so (nothing of it is buffered), and a message
 * whose compressed flag is set: this server accepts no compression (Envoy sends none), and
 * says so with grpc-accept-encoding: identity.
 */
export class FrameReader {
  /** A frame header split across chunks, gathered (allocated the first time one is). */
  private header: Buffer | undefined;
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;

  constructor(private readonly maxMessageBytes: number) {}

  /** True between messages: nothing of a next message has arrived. */
  get idle(): boolean {
    return this.headerFill === 0 && this.body === undefined;
  }

  /** Calls `onMessage` (on `self`) for each whole message in `chunk`, in order. Throws FrameError. */
  push<T>(chunk: Buffer, onMessage: (this: T, message: Buffer) => void, self?: T): void {
    let pos = 0;
    const n = chunk.length;
    while (pos < n) {
      if (this.body === undefined) {
        // Fast path: a whole frame inside this chunk, read in place.
        if (this.headerFill === 0 && n - pos >= FRAME_HEADER_BYTES) {
          const length = this.check(chunk[pos]!, chunk.readUInt32BE(pos + 1));
          if (n - pos - FRAME_HEADER_BYTES >= length) {
            onMessage.call(self as T, chunk.subarray(pos + FRAME_HEADER_BYTES, pos + FRAME_HEADER_BYTES + length));
            pos += FRAME_HEADER_BYTES + length;
            continue;
          }
          this.body = Buffer.allocUnsafe(length);
          this.bodyFill = 0;
          pos += FRAME_HEADER_BYTES;
          continue;
        }
        const take = Math.min(FRAME_HEADER_BYTES - this.headerFill, n - pos);
        this.header ??= Buffer.allocUnsafe(FRAME_HEADER_BYTES);
        chunk.copy(this.header, this.headerFill, pos, pos + take);
        this.headerFill += take;
        pos += take;
        if (this.headerFill < FRAME_HEADER_BYTES) return;
        this.headerFill = 0;
        const length = this.check(this.header[0]!, this.header.readUInt32BE(1));
        this.body = Buffer.allocUnsafe(length);
        this.bodyFill = 0;
        if (length === 0) this.deliver(onMessage, self);
        continue;
      }
      const take = Math.min(this.body.length - this.bodyFill, n - pos);
      chunk.copy(this.body, this.bodyFill, pos, pos + take);
      this.bodyFill += take;
      pos += take;
      if (this.bodyFill === this.body.length) this.deliver(onMessage, self);
    }
  }

  private deliver<T>(onMessage: (this: T, message: Buffer) => void, self: T | undefined): void {
    const body = this.body!;
    this.body = undefined;
    onMessage.call(self as T, body);
  }

  private check(flag: number, length: number): number {
    if (flag !== 0) {
      throw new FrameError(
        flag === 1 ? Status.UNIMPLEMENTED : Status.INTERNAL,
        flag === 1
          ? 'Compressed messages are not accepted (grpc-accept-encoding: identity)'
          : `Invalid message flag ${flag}`,
      );
    }
    if (length > this.maxMessageBytes) {
      throw new FrameError(
        Status.RESOURCE_EXHAUSTED,
        `Received message larger than max (${length} vs. ${this.maxMessageBytes})`,
      );
    }
    return length;
  }
}

const TIMEOUT_UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };

/** Node's timers take at most 2^31 - 1 ms; a longer deadline is no deadline. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * grpc-timeout ("200m", "5S": 1 to 8 digits and a unit) in milliseconds; NaN when malformed.
 * Under a millisecond counts as one: the call is already late when it is read.
 */
export function parseGrpcTimeout(v: string): number {
  const n = v.length;
  if (n < 2 || n > 9) return NaN;
  const unit = TIMEOUT_UNIT_MS[v[n - 1]!];
  if (unit === undefined) return NaN;
  let value = 0;
  for (let i = 0; i < n - 1; i++) {
    const c = v.charCodeAt(i) - 48;
    if (c < 0 || c > 9) return NaN;
    value = value * 10 + c;
  }
  return Math.max(1, Math.ceil(value * unit));
}

/**
 * grpc-message: UTF-8, with "%" and every byte outside printable ASCII (0x20–0x7E)
 * percent-encoded, as the protocol asks.
 */
export function encodeGrpcMessage(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
