// Rewrites a `text/event-stream` MCP response as it streams: the `message` event that
// answers a listed call (tools/list, …) gets its list filtered; every other event is passed
// on byte for byte, in order. Chunks go in as they arrive and come out as soon as the events
// they complete are known, so notifications sent before the result still arrive first.
//
// An `endpoint` event (the MCP 2024-11-05 HTTP+SSE transport, whose results arrive on a
// stream other than their request's) fails the stream too.
//
// Events are read as the HTML Living Standard's event-stream parser reads them (lines end in
// CRLF, LF or CR; a BOM at the start is skipped; `:` starts a comment; one space after the
// colon is dropped; a blank line ends an event; an event without data dispatches nothing;
// the type defaults to "message"). Where a lenient reader could disagree — a field name in
// another case, a `message` type with extra spaces, a result in an event of another type —
// the stream fails closed. So does an event larger than `maxEventBytes` and a stream that
// ends inside an event: the caller stops the stream; it is never completed with bytes that
// were not checked.
import {
  carriesListResult,
  filterMessage,
  failure,
  mentionsListedCall,
  parseJsonRpc,
  withheldListResponse,
  type FilterFailure,
  type FilterStats,
} from './list-filter.js';
import type { ListCalls, RequestId, VisibilityFor } from './list-methods.js';

export interface SseRewriterOptions {
  /** The list calls of the request this stream answers. */
  calls: ListCalls;
  visibleFor: VisibilityFor;
  /** Largest event held while it is being completed, its blank line included. Default 1 MiB. */
  maxEventBytes?: number;
}

export type SseStep =
  /** `out`: the bytes to forward now (possibly none). */
  | { readonly ok: true; readonly out: Buffer }
  /**
   * The stream must stop. `out` holds the events completed before the failure, which are
   * safe to forward; `errorEvent`, when not empty, is a `message` event answering each
   * listed call not yet answered with a JSON-RPC error, which may be sent after them.
   */
  | { readonly ok: false; readonly out: Buffer; readonly failure: FilterFailure; readonly errorEvent: Buffer };

const CR = 0x0d;
const LF = 0x0a;
const EMPTY = Buffer.alloc(0);
const BOM = [0xef, 0xbb, 0xbf];
const KNOWN_FIELDS = new Set(['data', 'event', 'id', 'retry']);
const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;

export class SseListRewriter {
  readonly stats: FilterStats = { results: 0, shown: 0, hidden: 0 };
  /** The listed calls answered so far on this stream. */
  readonly answered = new Set<RequestId>();

  private readonly calls: ListCalls;
  private readonly visibleFor: VisibilityFor;
  private readonly maxEventBytes: number;
  // ignoreBOM: only the stream's first event may start with a BOM that readers skip.
  private readonly decoder = new TextDecoder('utf-8', { ignoreBOM: true });

  /** Bytes of the event being completed. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  /** The current line has no byte yet: a terminator now ends the event. */
  private lineEmpty = true;
  /** The last byte was a CR, so an LF now completes that terminator. */
  private afterCR = false;
  /** An event whose blank line ended in CR at the end of a chunk: an LF may still belong to it. */
  private held: Buffer | undefined;
  private firstEvent = true;
  /** Bytes of the stream-starting BOM still expected; they are no line content. */
  private bomLeft = 3;
  /** BOM bytes held in `pending`. */
  private bomPending = 0;
  private failed: FilterFailure | undefined;

  constructor(opts: SseRewriterOptions) {
    this.calls = opts.calls;
    this.visibleFor = opts.visibleFor;
    this.maxEventBytes = opts.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  }

  push(chunk: Uint8Array): SseStep {
    if (this.failed) return this.closed();
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    const out: Buffer[] = [];
    let start = 0;
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i]!;
      if (this.held !== undefined) {
        const event = c === LF ? Buffer.concat([this.held, bytes.subarray(i, i + 1)]) : this.held;
        this.held = undefined;
        const f = this.complete(event, out);
        if (f) return this.fail(f, out);
        if (c === LF) {
          start = i + 1;
          continue;
        }
        start = i;
      }
      if (this.bomLeft > 0) {
        if (c === BOM[3 - this.bomLeft]) {
          this.bomLeft--;
          this.bomPending++;
          continue;
        }
        // Not a BOM after all: what was taken for one is line content.
        if (this.bomLeft < 3) this.lineEmpty = false;
        this.bomPending = 0;
        this.bomLeft = 0;
      }
      if (this.afterCR && c === LF) {
        this.afterCR = false;
        continue;
      }
      this.afterCR = c === CR;
      if (c !== CR && c !== LF) {
        this.lineEmpty = false;
        continue;
      }
      if (!this.lineEmpty) {
        this.lineEmpty = true;
        continue;
      }
      // A blank line: the event is complete.
      const event = this.take(bytes.subarray(start, i + 1));
      start = i + 1;
      this.afterCR = false;
      if (c === CR) {
        this.held = event;
        continue;
      }
      const f = this.complete(event, out);
      if (f) return this.fail(f, out);
    }
    if (start < bytes.length) {
      this.pending.push(Buffer.from(bytes.subarray(start)));
      this.pendingBytes += bytes.length - start;
    }
    const tooBig = this.sizeFailure(this.pendingBytes + (this.held?.length ?? 0));
    if (tooBig) return this.fail(tooBig, out);
    return { ok: true, out: concat(out) };
  }

  /** The upstream finished: completes the last event; a stream that ends inside an event fails. */
  end(): SseStep {
    if (this.failed) return this.closed();
    const out: Buffer[] = [];
    if (this.held !== undefined) {
      const event = this.held;
      this.held = undefined;
      const f = this.complete(event, out);
      if (f) return this.fail(f, out);
    }
    const partialBom = this.bomLeft > 0 && this.bomLeft < 3;
    if (this.pendingBytes > this.bomPending || partialBom) {
      return this.fail(
        failure(
          'truncated_stream',
          `the stream ended inside an event (${this.pendingBytes} bytes without their blank line)`,
        ),
        out,
      );
    }
    // A stream of nothing but a BOM: no event, forwarded as it is.
    if (this.pendingBytes > 0) out.push(this.take(EMPTY));
    return { ok: true, out: concat(out) };
  }

  private take(tail: Buffer): Buffer {
    const event = this.pending.length === 0 ? Buffer.from(tail) : Buffer.concat([...this.pending, tail]);
    this.pending = [];
    this.pendingBytes = 0;
    this.bomPending = 0;
    return event;
  }

  /** Checks one complete event and appends what to forward; returns a failure instead when it must not pass. */
  private complete(event: Buffer, out: Buffer[]): FilterFailure | undefined {
    const tooBig = this.sizeFailure(event.length);
    if (tooBig) return tooBig;
    const first = this.firstEvent;
    this.firstEvent = false;
    let text = this.decoder.decode(event);
    const bom = first && text.charCodeAt(0) === 0xfeff;
    if (bom) text = text.slice(1);

    const lines = splitLines(text);
    let type = '';
    const data: string[] = [];
    let firstData = -1;
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.text;
      if (line === '' || line.charCodeAt(0) === 0x3a /* : */) continue;
      const colon = line.indexOf(':');
      const name = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.charCodeAt(0) === 0x20) value = value.slice(1);
      if (!KNOWN_FIELDS.has(name)) {
        const folded = name.trim().toLowerCase();
        if (KNOWN_FIELDS.has(folded))
          return failure('ambiguous_sse_field', `the field "${name}" would be read as "${folded}" by lenient readers`);
        continue;
      }
      if (name === 'data') {
        if (firstData < 0) firstData = i;
        data.push(value);
      } else if (name === 'event') {
        type = value;
      }
    }

    if (firstData < 0) {
      out.push(event);
      return undefined;
    }
    // The 2024-11-05 HTTP+SSE transport opens with an `endpoint` event naming where to POST:
    // its results arrive on this stream for requests sent on others, which the service could
    // not match them to, so a list among them could not be filtered.
    if (type.trim().toLowerCase() === 'endpoint')
      return failure('legacy_sse_transport', 'an endpoint event: the MCP 2024-11-05 HTTP+SSE transport');
    const payload = data.join('\n');
    const isMessage = type === '' || type === 'message';
    if (!isMessage) {
      if (type.trim().toLowerCase() === 'message')
        return failure('ambiguous_sse_field', `the event type "${type}" would be read as "message" by lenient readers`);
      const loose = parseLoosely(payload);
      if (mentionsListedCall(loose, this.calls) || carriesListResult(loose)) {
        return failure(
          'ambiguous_response',
          `an event of type "${type}" carries a list result; only "message" events are filtered`,
        );
      }
      out.push(event);
      return undefined;
    }
    if (payload.trim() === '') {
      out.push(event);
      return undefined;
    }
    const parsed = parseJsonRpc(payload);
    if (!parsed.ok) return parsed;
    const filtered = filterMessage(parsed.value, this.calls, this.visibleFor, this.answered);
    if (!filtered.ok) return filtered;
    if (!filtered.changed) {
      out.push(event);
      return undefined;
    }
    this.stats.results += filtered.stats.results;
    this.stats.shown += filtered.stats.shown;
    this.stats.hidden += filtered.stats.hidden;

    // The same lines in the same order; the data lines become one, where the first one was.
    let rewritten = bom ? '\ufeff' : '';
    for (let i = 0; i < lines.length; i++) {
      const { text: line, end } = lines[i]!;
      if (i === firstData) rewritten += `data: ${JSON.stringify(filtered.message)}${end}`;
      else if (i === lines.length - 1 && end === '\n' && rewritten.endsWith('\r'))
        rewritten += '\r\n'; // a CR then LF would read as one line end
      else if (!isDataLine(line)) rewritten += line + end;
    }
    out.push(Buffer.from(rewritten, 'utf8'));
    return undefined;
  }

  private sizeFailure(bytes: number): FilterFailure | undefined {
    return bytes > this.maxEventBytes
      ? failure('event_too_large', `an event exceeds ${this.maxEventBytes} bytes`)
      : undefined;
  }

  private fail(why: FilterFailure, out: Buffer[]): SseStep {
    this.failed = why;
    this.pending = [];
    this.pendingBytes = 0;
    this.held = undefined;
    const unanswered = new Map([...this.calls].filter(([id]) => !this.answered.has(id)));
    const errorEvent =
      unanswered.size === 0
        ? EMPTY
        : Buffer.from(
            `event: message\ndata: ${JSON.stringify(withheldListResponse(unanswered, why, { batch: false }))}\n\n`,
            'utf8',
          );
    return { ok: false, out: concat(out), failure: why, errorEvent };
  }

  private closed(): SseStep {
    return { ok: false, out: EMPTY, failure: this.failed!, errorEvent: EMPTY };
  }
}

interface Line {
  text: string;
  /** Its terminator as received: "\r\n", "\n" or "\r". */
  end: string;
}

function splitLines(text: string): Line[] {
  const lines: Line[] = [];
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== CR && c !== LF) continue;
    const crlf = c === CR && text.charCodeAt(i + 1) === LF;
    lines.push({ text: text.slice(start, i), end: crlf ? '\r\n' : c === CR ? '\r' : '\n' });
    if (crlf) i++;
    start = i + 1;
  }
  return lines;
}

function isDataLine(line: string): boolean {
  return line === 'data' || line.startsWith('data:');
}

function parseLoosely(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function concat(parts: Buffer[]): Buffer {
  return parts.length === 0 ? EMPTY : parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
