// The W3C trace context a Check arrives with: traceparent read by the Trace Context rules,
// the call's ahead of the request's, and nothing malformed let through to the logs or spans.
import test from 'ava';
import fc from 'fast-check';
import { headerRecordValue, incomingTraceContext, parseTraceparent } from '../src/request/trace-context.js';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';

test('a version-00 traceparent gives its trace id, parent span id and sampled flag', (t) => {
  t.deepEqual(parseTraceparent(`00-${TRACE}-${SPAN}-01`), {
    traceId: TRACE,
    parentSpanId: SPAN,
    sampled: true,
    traceState: undefined,
  });
  t.false(parseTraceparent(`00-${TRACE}-${SPAN}-00`)!.sampled);
  t.true(parseTraceparent(`00-${TRACE}-${SPAN}-03`)!.sampled, 'other flag bits do not hide the sampled bit');
  t.is(parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'vendor=x')!.traceState, 'vendor=x');
});

test('malformed traceparents are refused, not half-read', (t) => {
  for (const bad of [
    '',
    `00-${TRACE}-${SPAN}-1`,
    `00-${TRACE}-${SPAN}-01-extra`, // version 00 has exactly four fields
    `ff-${TRACE}-${SPAN}-01`, // version ff is invalid
    `00-${TRACE.toUpperCase()}-${SPAN}-01`, // lower-case hex only
    `00-${'0'.repeat(32)}-${SPAN}-01`,
    `00-${TRACE}-${'0'.repeat(16)}-01`,
    `00-${TRACE}-${SPAN}-0g`,
    `00_${TRACE}-${SPAN}-01`,
    ` 00-${TRACE}-${SPAN}-01`,
    `01-${TRACE}-${SPAN}-01x`, // a later version may only append after a '-'
  ]) {
    t.is(parseTraceparent(bad), undefined, JSON.stringify(bad));
  }
  t.truthy(
    parseTraceparent(`01-${TRACE}-${SPAN}-01-future-field`),
    'a later version with more fields is read for its first four',
  );
});

test('any well-formed traceparent is read back exactly; any other string yields nothing or well-formed ids', (t) => {
  const hex = (n: number) => fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: n, maxLength: n });
  fc.assert(
    fc.property(hex(32), hex(16), hex(2), (traceId, spanId, flags) => {
      const parsed = parseTraceparent(`00-${traceId}-${spanId}-${flags}`);
      if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return parsed === undefined;
      return (
        parsed?.traceId === traceId &&
        parsed.parentSpanId === spanId &&
        parsed.sampled === ((parseInt(flags, 16) & 1) === 1)
      );
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 80 }), (s) => {
      const parsed = parseTraceparent(s);
      return (
        parsed === undefined || (/^[0-9a-f]{32}$/.test(parsed.traceId) && /^[0-9a-f]{16}$/.test(parsed.parentSpanId))
      );
    }),
    { numRuns: 2000 },
  );
  t.pass();
});

test("the call's trace context comes first; the request's is read when the call has none or a bad one", (t) => {
  const callParent = `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01`;
  const reqParent = `00-${TRACE}-${SPAN}-00`;
  const headers = { traceparent: [reqParent], tracestate: ['a=1', 'b=2'] };
  t.is(
    incomingTraceContext(headers, { traceparent: callParent, tracestate: 'c=3' }, headerRecordValue)?.traceId,
    'a'.repeat(32),
  );
  t.is(
    incomingTraceContext(headers, { traceparent: callParent, tracestate: 'c=3' }, headerRecordValue)?.traceState,
    'c=3',
    'tracestate from the same source',
  );
  const fromRequest = incomingTraceContext(headers, { traceparent: 'garbage' }, headerRecordValue);
  t.is(fromRequest?.traceId, TRACE);
  t.is(fromRequest?.traceState, 'a=1,b=2', 'several tracestate headers are one list');
  t.is(incomingTraceContext(headers, undefined, undefined)?.traceId, TRACE);
  t.is(incomingTraceContext({}, {}, headerRecordValue), undefined);
});

test('two traceparent headers are no trace context: readers would disagree on which one counts', (t) => {
  t.is(
    incomingTraceContext(
      { traceparent: [`00-${TRACE}-${SPAN}-01`, `00-${'c'.repeat(32)}-${SPAN}-01`] },
      undefined,
      undefined,
    ),
    undefined,
  );
});

test('a tracestate too long to be one is dropped; the traceparent still counts', (t) => {
  const parsed = parseTraceparent(`00-${TRACE}-${SPAN}-01`, 'k=' + 'v'.repeat(20_000));
  t.is(parsed?.traceId, TRACE);
  t.is(parsed?.traceState, undefined);
});
