import test from 'ava';
import fc from 'fast-check';
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { filterMessage } from '../src/mcp-response/list-filter.js';
import type { ListCalls, VisibilityFor } from '../src/mcp-response/list-methods.js';
import { SseListRewriter, type SseStep } from '../src/mcp-response/sse-list-rewriter.js';

const CALLS: ListCalls = new Map([[1, 'tools/list']]);
const HIDE_DELETE: VisibilityFor = () => (item) => item.key !== 'delete_repo';
const LIST_RESULT = {
  jsonrpc: '2.0',
  id: 1,
  result: {
    tools: [{ name: 'search' }, { name: 'delete_repo' }, { name: 'read_file' }],
    ttlMs: 1000,
    cacheScope: 'public',
  },
};
const FILTERED = {
  jsonrpc: '2.0',
  id: 1,
  result: { tools: [{ name: 'search' }, { name: 'read_file' }], ttlMs: 1000, cacheScope: 'private' },
};

interface Run {
  ok: boolean;
  out: Buffer;
  code?: string;
  errorEvent?: Buffer;
}

/** Feeds the chunks, then ends the stream; stops at the first failure as a caller would. */
function run(
  chunks: (string | Buffer)[],
  opts: { maxEventBytes?: number; visibleFor?: VisibilityFor; calls?: ListCalls } = {},
): Run {
  const rw = new SseListRewriter({
    calls: opts.calls ?? CALLS,
    visibleFor: opts.visibleFor ?? HIDE_DELETE,
    maxEventBytes: opts.maxEventBytes ?? 64 * 1024,
  });
  const out: Buffer[] = [];
  const finish = (step: SseStep): Run | undefined => {
    out.push(step.out);
    if (!step.ok) return { ok: false, out: Buffer.concat(out), code: step.failure.code, errorEvent: step.errorEvent };
    return undefined;
  };
  for (const c of chunks) {
    const r = finish(rw.push(typeof c === 'string' ? Buffer.from(c, 'utf8') : c));
    if (r) return r;
  }
  return finish(rw.end()) ?? { ok: true, out: Buffer.concat(out) };
}

/** The events a real event-stream reader (the MCP SDK client's parser) sees in the bytes. */
function readEvents(bytes: Buffer): EventSourceMessage[] {
  const events: EventSourceMessage[] = [];
  const parser = createParser({ onEvent: (e) => events.push({ event: e.event, id: e.id, data: e.data }) });
  parser.feed(new TextDecoder().decode(bytes));
  return events;
}

const progress = (n: number) =>
  JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 'p', progress: n } });

test('the list result is filtered and everything around it passes byte for byte', (t) => {
  const before = `: keep-alive\n\nevent: message\nid: e1\ndata: ${progress(1)}\n\n`;
  const after = `id: e3\ndata: ${progress(2)}\n\n`;
  const r = run([before + `event: message\nid: e2\nretry: 500\ndata: ${JSON.stringify(LIST_RESULT)}\n\n` + after]);
  t.true(r.ok);
  const text = r.out.toString('utf8');
  t.true(text.startsWith(before));
  t.true(text.endsWith(after));
  t.is(
    text.slice(before.length, text.length - after.length),
    `event: message\nid: e2\nretry: 500\ndata: ${JSON.stringify(FILTERED)}\n\n`,
  );
  const events = readEvents(r.out);
  t.deepEqual(JSON.parse(events[1]!.data), FILTERED);
  t.is(events[1]!.id, 'e2');
});

test('data split over several lines is read as one message and rewritten as one line, keeping CRLF endings', (t) => {
  const lines = JSON.stringify(LIST_RESULT, null, 2).split('\n');
  const event = lines.map((l) => `data:${l}\r\n`).join('') + 'id: 9\r\n\r\n';
  const r = run([event]);
  t.true(r.ok);
  t.is(r.out.toString('utf8'), `data: ${JSON.stringify(FILTERED)}\r\nid: 9\r\n\r\n`);
});

test('CR line endings, a BOM at the start and a CRLF whose LF arrives in the next chunk are read as the standard says', (t) => {
  const bom = '\ufeff';
  const r = run([`${bom}data: ${progress(1)}\r\r`, `\ndata: ${JSON.stringify(LIST_RESULT)}\r\r`, '\n: done\n\n']);
  t.true(r.ok);
  t.is(r.out.toString('utf8'), `${bom}data: ${progress(1)}\r\r\ndata: ${JSON.stringify(FILTERED)}\r\r\n: done\n\n`);
  const events = readEvents(r.out);
  t.is(events.length, 2);
  t.deepEqual(JSON.parse(events[1]!.data), FILTERED);
});

test('a notification is forwarded as soon as its event is complete, before the result arrives', (t) => {
  const rw = new SseListRewriter({ calls: CALLS, visibleFor: HIDE_DELETE });
  const first = rw.push(Buffer.from(`data: ${progress(1)}\n\ndata: {"jsonrpc":"2.0","id":1,`));
  t.true(first.ok);
  t.is(first.out.toString(), `data: ${progress(1)}\n\n`);
  const second = rw.push(Buffer.from(`"result":${JSON.stringify(LIST_RESULT.result)}}\n\n`));
  t.true(second.ok);
  t.deepEqual(JSON.parse(readEvents(second.out)[0]!.data), FILTERED);
  t.deepEqual(rw.stats, { results: 1, shown: 2, hidden: 1 });
  t.true(rw.end().ok);
});

test('a response to another call, an error answer and events of other types pass unchanged', (t) => {
  const stream = [
    `data: ${JSON.stringify({ jsonrpc: '2.0', id: 2, result: { content: [{ type: 'text', text: 'delete_repo' }] } })}\n\n`,
    `event: note\ndata: /messages?x=1\n\n`,
    `data: ${JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32601, message: 'no' } })}\n\n`,
    `id: 5\n\n`,
    `data:\n\n`,
  ].join('');
  const r = run([stream]);
  t.true(r.ok);
  t.is(r.out.toString(), stream);
});

test('an endpoint event (the 2024-11-05 HTTP+SSE transport) ends the stream before it, in any spelling a lenient reader takes', (t) => {
  for (const type of ['endpoint', 'Endpoint', ' endpoint ']) {
    const before = `data: ${progress(1)}\n\n`;
    const r = run([
      before,
      `event:${type}\ndata: /messages?sessionId=abc\n\n`,
      `data: ${JSON.stringify(LIST_RESULT)}\n\n`,
    ]);
    t.false(r.ok, type);
    t.is(r.code, 'legacy_sse_transport', type);
    t.is(r.out.toString(), before, `${type}: only the events before it pass`);
  }
});

test('an event larger than the bound fails closed, after the events before it', (t) => {
  const small = `data: ${progress(1)}\n\n`;
  const r = run([small, `data: ${'x'.repeat(200)}`, `${'y'.repeat(200)}\n\n`], { maxEventBytes: 256 });
  t.false(r.ok);
  t.is(r.code, 'event_too_large');
  t.is(r.out.toString(), small);
  t.deepEqual(JSON.parse(readEvents(r.errorEvent!)[0]!.data), {
    jsonrpc: '2.0',
    id: 1,
    error: {
      code: -32603,
      message: 'The list result was withheld: it could not be filtered for this caller.',
      data: { reason: 'event_too_large' },
    },
  });
});

test('a stream that ends inside an event fails closed and nothing of that event is forwarded', (t) => {
  const r = run([`data: ${progress(1)}\n\n`, `data: ${JSON.stringify(LIST_RESULT)}\n`]);
  t.false(r.ok);
  t.is(r.code, 'truncated_stream');
  t.is(r.out.toString(), `data: ${progress(1)}\n\n`);
});

test('after a failure the rewriter forwards nothing more', (t) => {
  const rw = new SseListRewriter({ calls: CALLS, visibleFor: HIDE_DELETE });
  t.false(rw.push(Buffer.from('data: {oops}\n\n')).ok);
  const next = rw.push(Buffer.from(`data: ${progress(1)}\n\n`));
  t.false(next.ok);
  t.is(next.out.length, 0);
  t.false(rw.end().ok);
});

test('events lenient readers could take for the result fail closed', (t) => {
  const result = JSON.stringify(LIST_RESULT);
  const cases: [string, string][] = [
    [`Data: ${result}\n\n`, 'ambiguous_sse_field'],
    [` data: ${result}\n\n`, 'ambiguous_sse_field'],
    [`data : ${result}\n\n`, 'ambiguous_sse_field'],
    [`event: Message\ndata: ${result}\n\n`, 'ambiguous_sse_field'],
    [`event: message \ndata: ${result}\n\n`, 'ambiguous_sse_field'],
    [`event: other\ndata: ${result}\n\n`, 'ambiguous_response'],
    [`data: ${result.replace('"id":1', '"id":"1"')}\n\n`, 'ambiguous_response'],
    [`data: ${result.replace('"id":1', '"ID":1')}\n\n`, 'ambiguous_member'],
    [
      `data: ${result.replace('{"name":"search"}', '{"name":"search","Name":"delete_repo"}')}\n\n`,
      'duplicate_json_key',
    ],
    [`data: ${result.slice(0, -1)},"result":{"tools":[]}}\n\n`, 'duplicate_json_key'],
    [`data: ${result.replace('"search"}', '"search","n":NaN}')}\n\n`, 'invalid_json'],
    [`data: ${result}\n\ndata: ${result}\n\n`, 'ambiguous_response'],
    [`data: ${result.replace('"id":1', '"id":null')}\n\n`, 'unmatched_response'],
    [`data: ${result.replace('"id":1', '"id":7')}\n\n`, 'unmatched_response'],
    [
      `event: note\ndata: ${result.replace('"id":1', '"id":7').replace('"tools"', '"Tools"')}\n\n`,
      'ambiguous_response',
    ],
  ];
  for (const [stream, code] of cases) {
    const r = run([stream]);
    t.false(r.ok, stream);
    t.is(r.code, code, stream);
  }
});

// ---- properties -------------------------------------------------------------------------

const lineEnd = fc.constantFrom('\n', '\r\n', '\r');
const other = fc.oneof(
  fc.nat({ max: 100 }).map((n) => ({ data: progress(n) })),
  fc.nat({ max: 100 }).map((n) => ({
    data: JSON.stringify({ jsonrpc: '2.0', id: n + 2, result: { content: [{ type: 'text', text: 'delete_repo' }] } }),
  })),
  fc.constant({ data: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }) }),
  fc.string({ maxLength: 10 }).map((s) => ({ event: 'note', data: s.replace(/[\r\n]/g, ' ') })),
  fc.constant({ comment: 'keep-alive' }),
);
const target = fc.constant({ data: JSON.stringify(LIST_RESULT), target: true });

interface Ev {
  data?: string;
  event?: string;
  comment?: string;
  target?: boolean;
}

/** Renders events with random line endings, ids, retries and data split over lines; never a CR directly before the blank line's LF. */
const stream = (events: fc.Arbitrary<Ev[]>) =>
  fc
    .tuple(
      events,
      fc.array(lineEnd, { minLength: 16, maxLength: 16 }),
      fc.array(fc.nat({ max: 3 }), { minLength: 16, maxLength: 16 }),
      fc.boolean(),
    )
    .map(([evs, endList, pickList, bom]) => {
      // Cycled fixed lists rather than infinite streams: the same value must render the same bytes every time.
      let e = 0;
      let p = 0;
      const endIt = { next: () => ({ value: endList[e++ % endList.length]! }) };
      const pickIt = { next: () => ({ value: pickList[p++ % pickList.length]! }) };
      let text = bom ? '\ufeff' : '';
      const blocks: string[] = [];
      for (const ev of evs) {
        const lines: string[] = [];
        if (ev.comment !== undefined) lines.push(`: ${ev.comment}`);
        if (ev.event !== undefined) lines.push(`event: ${ev.event}`);
        const pick = pickIt.next().value as number;
        if (pick === 1) lines.push(`id: ${blocks.length}`);
        if (pick === 2) lines.push('retry: 1000');
        if (ev.data !== undefined) {
          const dataLines = (pick === 3 ? pretty(ev.data) : ev.data).split('\n');
          for (const l of dataLines) lines.push(l === '' ? 'data' : `data:${pickIt.next().value === 0 ? '' : ' '}${l}`);
        }
        let block = '';
        let last = '';
        for (const l of lines) {
          last = endIt.next().value as string;
          block += l + last;
        }
        let blank = endIt.next().value as string;
        if (last === '\r' && blank === '\n') blank = '\r\n';
        block += blank;
        blocks.push(block);
        text += block;
      }
      return Buffer.from(text, 'utf8');
    });

/** JSON spread over several lines, so its event has several data lines. */
function pretty(data: string): string {
  try {
    return JSON.stringify(JSON.parse(data), null, 1);
  } catch {
    return data;
  }
}

const splits = (bytes: Buffer) =>
  fc.uniqueArray(fc.nat({ max: Math.max(0, bytes.length) }), { maxLength: 8 }).map((cuts) => {
    const points = [0, ...cuts.sort((a, b) => a - b), bytes.length];
    const parts: Buffer[] = [];
    for (let i = 1; i < points.length; i++) parts.push(bytes.subarray(points[i - 1], points[i]));
    return parts;
  });

test('any split of the same bytes gives the same output', (t) => {
  const anyBytes = fc.oneof(
    stream(fc.array(fc.oneof(other, target), { maxLength: 6 })),
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    fc
      .array(
        fc.constantFrom(
          'data: ',
          'event: message',
          'id: 1',
          '\r',
          '\n',
          ':',
          JSON.stringify(LIST_RESULT),
          '{"jsonrpc":"2.0"}',
          'Data: x',
        ),
        { maxLength: 20 },
      )
      .map((a) => Buffer.from(a.join(''))),
  );
  fc.assert(
    fc.property(
      anyBytes.chain((bytes) => fc.tuple(fc.constant(bytes), splits(bytes))),
      fc.constantFrom(64, 4096),
      ([bytes, parts], maxEventBytes) => {
        const whole = run([bytes], { maxEventBytes });
        const split = run(parts, { maxEventBytes });
        return whole.ok === split.ok && whole.code === split.code && whole.out.equals(split.out);
      },
    ),
    { numRuns: 1500 },
  );
  t.pass();
});

test('a stream that answers no listed call comes out byte-identical', (t) => {
  fc.assert(
    fc.property(
      stream(fc.array(other, { maxLength: 8 })).chain((bytes) => fc.tuple(fc.constant(bytes), splits(bytes))),
      ([bytes, parts]) => {
        const r = run(parts);
        return r.ok && r.out.equals(bytes);
      },
    ),
    { numRuns: 800 },
  );
  t.pass();
});

test('the rewritten event carries the JSON filter applied to its data, and every other event is read as before', (t) => {
  fc.assert(
    fc.property(
      fc
        .tuple(fc.array(other, { maxLength: 4 }), fc.array(other, { maxLength: 4 }))
        .chain(([a, b]) => stream(fc.constant([...a, { data: JSON.stringify(LIST_RESULT), target: true }, ...b])))
        .chain((bytes) => fc.tuple(fc.constant(bytes), splits(bytes))),
      ([bytes, parts]) => {
        const r = run(parts);
        if (!r.ok) return false;
        const before = readEvents(bytes);
        const after = readEvents(r.out);
        if (before.length !== after.length) return false;
        return before.every((e, i) => {
          const a = after[i]!;
          if (e.event !== a.event || e.id !== a.id) return false;
          const isTarget = e.data.includes('"delete_repo"') && e.data.includes('"search"');
          if (!isTarget) return e.data === a.data;
          const expected = filterMessage(JSON.parse(e.data), CALLS, HIDE_DELETE);
          return expected.ok && JSON.stringify(JSON.parse(a.data)) === JSON.stringify(expected.message);
        });
      },
    ),
    { numRuns: 800 },
  );
  t.pass();
});

test('whatever the bytes, no event a standard reader sees answers the listed call with a hidden tool', (t) => {
  const piece = fc.constantFrom(
    'data: ',
    'data:',
    'Data: ',
    'event: message\n',
    'event: other\n',
    'event:message \n',
    'id: 1\n',
    '\n',
    '\r',
    '\r\n',
    ': c\n',
    JSON.stringify(LIST_RESULT),
    `data: ${JSON.stringify(LIST_RESULT)}\n\n`,
    `event: message\r\ndata: ${JSON.stringify(LIST_RESULT)}\r\n\r\n`,
    JSON.stringify(LIST_RESULT).replace('"id":1', '"id":"1"'),
    '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"delete_repo"}]}',
    '{"jsonrpc":"2.0",',
    '"id":1,',
    '"result":{"tools":[{"name":"delete_repo"}]}}',
    '\ufeff',
  );
  fc.assert(
    fc.property(
      fc
        .array(piece, { maxLength: 24 })
        .map((a) => Buffer.from(a.join('')))
        .chain((bytes) => splits(bytes)),
      (parts) => {
        const r = run(parts);
        const out = r.ok ? r.out : Buffer.concat([r.out, r.errorEvent!]);
        return readEvents(out).every((e) => {
          if (e.event !== undefined && e.event !== 'message') return true;
          let msg: unknown;
          try {
            msg = JSON.parse(e.data);
          } catch {
            return true;
          }
          return (
            !JSON.stringify(msg).includes('delete_repo') ||
            !JSON.stringify(msg).includes('"result"') ||
            !/"id":1\b/.test(JSON.stringify(msg))
          );
        });
      },
    ),
    { numRuns: 2000 },
  );
  t.pass();
});
