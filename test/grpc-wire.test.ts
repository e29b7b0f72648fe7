// The gRPC wire pieces of the service's own server: the frame reader (property: any messages,
// cut anywhere, come out whole and in order), grpc-timeout, the grpc-message encoding
// (property: grpc-js's client reads back what was sent), and the deadline queue.
import test from 'ava';
import fc from 'fast-check';
import { DeadlineQueue, type Deadline } from '../src/grpc/deadlines.js';
import { encodeGrpcMessage, FrameError, FrameReader, frame, parseGrpcTimeout, Status } from '../src/grpc/wire.js';

test('property: framed messages cut at any points are read whole and in order', (t) => {
  fc.assert(
    fc.property(
      fc.array(fc.uint8Array({ maxLength: 300 }), { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 20 }),
      (messages, cuts) => {
        const wire = Buffer.concat(messages.map((m) => frame(m)));
        const points = [...new Set(cuts.map((c) => (wire.length ? c % wire.length : 0)))].sort((a, b) => a - b);
        const reader = new FrameReader(1000);
        const out: Buffer[] = [];
        let from = 0;
        for (const p of [...points, wire.length]) {
          reader.push(wire.subarray(from, p), (m) => out.push(Buffer.from(m)));
          from = p;
        }
        t.deepEqual(
          out.map((b) => b.toString('hex')),
          messages.map((m) => Buffer.from(m).toString('hex')),
        );
        t.true(reader.idle);
      },
    ),
  );
});

test('the frame reader refuses an oversized message from its header, before its body arrives', (t) => {
  const reader = new FrameReader(10);
  const header = Buffer.from([0, 0, 0, 0, 11]);
  const err = t.throws(() => reader.push(header, () => t.fail('no message')), { instanceOf: FrameError }) as FrameError;
  t.is(err.code, Status.RESOURCE_EXHAUSTED);
});

test('the frame reader refuses compressed messages (UNIMPLEMENTED) and unknown flags (INTERNAL)', (t) => {
  const compressed = frame(Buffer.from('x'));
  compressed[0] = 1;
  t.is(
    (t.throws(() => new FrameReader(10).push(compressed, () => undefined)) as FrameError).code,
    Status.UNIMPLEMENTED,
  );
  compressed[0] = 2;
  t.is((t.throws(() => new FrameReader(10).push(compressed, () => undefined)) as FrameError).code, Status.INTERNAL);
});

test('the frame reader is not idle inside a message', (t) => {
  const reader = new FrameReader(100);
  reader.push(frame(Buffer.from('abc')).subarray(0, 6), () => t.fail('incomplete'));
  t.false(reader.idle);
});

test('grpc-timeout: 1 to 8 digits and a unit, in milliseconds; anything else is malformed', (t) => {
  t.is(parseGrpcTimeout('200m'), 200);
  t.is(parseGrpcTimeout('5S'), 5000);
  t.is(parseGrpcTimeout('2M'), 120_000);
  t.is(parseGrpcTimeout('1H'), 3_600_000);
  t.is(parseGrpcTimeout('1500u'), 2, 'rounded up');
  t.is(parseGrpcTimeout('1n'), 1, 'at least a millisecond');
  t.is(parseGrpcTimeout('99999999S'), 99_999_999_000);
  for (const bad of ['', 'm', '200', '123456789m', '-1m', '1.5S', '10x', ' 5S', '5 S'])
    t.true(Number.isNaN(parseGrpcTimeout(bad)), bad);
});

test('property: grpc-message percent-encoding is printable ASCII that grpc-js decodes back to the message', (t) => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
      const encoded = encodeGrpcMessage(s);
      t.regex(encoded, /^[\x20-\x7e]*$/);
      // grpc-js's client reads grpc-message with decodeURI.
      t.is(decodeURI(encoded), s);
    }),
  );
});

test('the deadline queue expires late calls once, in order, and never a call that finished', async (t) => {
  const q = new DeadlineQueue();
  const expired: string[] = [];
  let last!: () => void;
  const allDone = new Promise<void>((r) => (last = r));
  const now = performance.now();
  const item = (name: string, at: number): Deadline => ({
    at,
    done: false,
    expire() {
      this.done = true;
      expired.push(name);
      if (name === 'd') last();
    },
  });
  const a = item('a', now + 5);
  const b = item('b', now + 6);
  const c = item('c', now + 7);
  const early = item('early', now + 1); // earlier than the queue's last: a timer of its own
  const d = item('d', now + 20);
  q.add(a);
  q.add(b);
  q.add(c);
  q.add(early);
  q.add(d);
  b.done = true; // finished in time
  // The queue's timers do not hold the process open (a server does); this test does.
  const keepAlive = setInterval(() => undefined, 1000);
  await allDone;
  clearInterval(keepAlive);
  t.deepEqual(expired.filter((n) => n !== 'early').sort(), ['a', 'c', 'd']);
  t.true(expired.includes('early'));
  t.true(expired.indexOf('a') < expired.indexOf('c') && expired.indexOf('c') < expired.indexOf('d'));
  t.is(q.size, 0);
});
