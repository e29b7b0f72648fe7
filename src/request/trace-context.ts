// The W3C trace context (traceparent, tracestate) a Check arrives with: on the transport's own
// call (gRPC metadata: Envoy's ext_authz client span) or among the HTTP request's headers (the
// caller's span). Read strictly, so only well-formed ids reach the decision log and the spans.
import type { HeaderMap } from '../contracts/request.js';

export interface TraceContext {
  /** 32 lower-case hex digits, not all zero. */
  traceId: string;
  /** The caller's span: 16 lower-case hex digits, not all zero. */
  parentSpanId: string;
  sampled: boolean;
  /** The tracestate that came with this traceparent, when there was one of a sane size. */
  traceState: string | undefined;
}

/**
 * Reads one header of a transport's own call — gRPC metadata, HTTP/2 request headers — by
 * lower-case name. A transport defines it once, never per call, and hands it to runCheck
 * with the call.
 */
export type CallHeader<C> = (call: C, name: string) => string | undefined;

/** Plain header records (node:http/http2 IncomingHttpHeaders): the first value of a name. */
export const headerRecordValue: CallHeader<Readonly<Record<string, string | string[] | undefined>>> = (
  headers,
  name,
) => {
  const v = headers[name];
  return typeof v === 'string' ? v : v?.[0];
};

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);
/** tracestate holds at most 32 members of at most 256 characters; longer values are dropped, not parsed. */
const MAX_TRACESTATE = 32 * 257;

/** A traceparent value by the W3C Trace Context rules, or undefined when it is not one. */
export function parseTraceparent(value: string | undefined, traceState?: string): TraceContext | undefined {
  if (value === undefined || value.length < 55) return undefined;
  const m = TRACEPARENT.exec(value);
  if (!m) return undefined;
  const [, version, traceId, parentSpanId, flags] = m as unknown as [string, string, string, string, string];
  if (version === 'ff') return undefined;
  // Version 00 is exactly 55 characters; a later version may append fields after a '-'.
  if (version === '00' ? value.length !== 55 : value.length > 55 && value[55] !== '-') return undefined;
  if (traceId === ZERO_TRACE || parentSpanId === ZERO_SPAN) return undefined;
  return {
    traceId,
    parentSpanId,
    sampled: (parseInt(flags, 16) & 1) === 1,
    traceState: traceState !== undefined && traceState.length <= MAX_TRACESTATE ? traceState : undefined,
  };
}

/**
 * The trace context a Check continues: the call's (Envoy's ext_authz client span, the direct
 * parent) when it carries a valid one, else the HTTP request's. A request with several
 * traceparent headers carries none: which one a reader takes is not defined.
 */
export function incomingTraceContext<C>(
  headers: HeaderMap,
  call: C | undefined,
  callHeader: CallHeader<C> | undefined,
): TraceContext | undefined {
  if (call !== undefined && callHeader !== undefined) {
    const fromCall = callHeader(call, 'traceparent');
    if (fromCall !== undefined) {
      const parsed = parseTraceparent(fromCall, callHeader(call, 'tracestate'));
      if (parsed) return parsed;
    }
  }
  const values = headers.traceparent;
  if (values === undefined || values.length !== 1) return undefined;
  const states = headers.tracestate;
  return parseTraceparent(
    values[0],
    states === undefined ? undefined : states.length === 1 ? states[0] : states.join(','),
  );
}
