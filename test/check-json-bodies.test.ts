// JSON bodies that readers could read differently, or that only break a reader, are the
// client's mistake: 400 with a code that says which, never a 503, a stack trace or an
// error-level log line. Through the real server over real gRPC, with and without the
// opa-envoy-plugin input (which hands the whole parsed body to the policy).
import test from 'ava';
import { pino } from 'pino';
import { validateConfig } from '../src/config/load.js';
import { checkRequest, deniedBody, deniedStatus, rpc, startTestService, type TestService } from './helpers/service.js';

interface Served {
  svc: TestService;
  lines: Record<string, unknown>[];
}

// One service per configuration, shared by the tests that use it.
const services = new Map<string, Promise<Served>>();

function serve(config: Record<string, unknown>): Promise<Served> {
  const id = JSON.stringify(config);
  let served = services.get(id);
  if (served === undefined) {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'debug' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    served = startTestService(
      {
        ...config,
        endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
      },
      { logger },
    ).then((svc) => ({ svc, lines }));
    services.set(id, served);
  }
  return served;
}

test.after.always(async () => Promise.all([...services.values()].map(async (s) => (await s).svc.stop())));

const PINO_ERROR = 50;
const nested = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const withArgument = (json: string) =>
  `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"a":${json}}}}`;
const utf8 = (...parts: (string | number[])[]) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

const clientMistakes: [string, { body?: string; rawBody?: Buffer }, string][] = [
  ['five thousand nested arrays in the arguments', { body: withArgument(nested(5000)) }, 'json_too_deep'],
  [
    'an escaped lone surrogate in the tool name',
    { body: rpc('tools/call', { name: 'x' }).replace('"x"', '"sea\\ud800rch"') },
    'lone_surrogate',
  ],
  ['a cut emoji (high surrogate alone) in the arguments', { body: withArgument('"\\ud83d"') }, 'lone_surrogate'],
  ['a low surrogate alone in a key', { body: withArgument('{"\\udc00":1}') }, 'lone_surrogate'],
  [
    'a surrogate encoded as UTF-8 bytes in raw_body',
    {
      rawBody: utf8(
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"sea',
        [0xed, 0xa0, 0x80],
        'rch"}}',
      ),
    },
    'invalid_utf8',
  ],
  ['a byte that is not UTF-8 in raw_body', { rawBody: utf8(withArgument('"caf'), [0xe9], '"') }, 'invalid_utf8'],
];

for (const envoyInput of [false, true]) {
  for (const [what, sample, code] of clientMistakes) {
    test(`${what} is 400 ${code}, logged below error level (envoyInput: ${envoyInput})`, async (t) => {
      const { svc, lines } = await serve({ policy: { envoyInput } });
      const res = await svc.check(checkRequest({ path: '/mcp/open', ...sample }));
      t.is(deniedStatus(res), 400);
      t.is(res.status?.code, 3);
      const body = deniedBody(res);
      t.is(body.error, code);
      t.false(/\n\s+at /.test(body.error_description), 'no stack trace in the answer');
      t.true(
        lines.some((l) => l.log === 'decision' && l.reason === code),
        'the deny is in the decision log',
      );
      t.deepEqual(
        lines.filter((l) => (l.level as number) >= PINO_ERROR),
        [],
        'no error-level log line',
      );
      t.false(
        lines.some((l) => JSON.stringify(l).includes('"stack"')),
        'no stack trace in the log',
      );
    });
  }
}

test('the default nesting bound is 64 levels: 64 pass, 65 are 400', async (t) => {
  const { svc } = await serve({ policy: { envoyInput: true } });
  const atBound = await svc.check(checkRequest({ path: '/mcp/open', body: withArgument(nested(61)) }));
  t.truthy(atBound.ok_response, 'the message, params, arguments and 61 arrays: 64 levels');
  const over = await svc.check(checkRequest({ path: '/mcp/open', body: withArgument(nested(62)) }));
  t.is(deniedStatus(over), 400);
  t.is(deniedBody(over).error, 'json_too_deep');
});

test('a whole emoji (an escaped surrogate pair, or raw) passes; half of one is 400', async (t) => {
  const { svc } = await serve({ policy: { envoyInput: true } });
  const whole = await svc.check(checkRequest({ path: '/mcp/open', body: withArgument('"\\ud83d\\ude00 and 😀"') }));
  t.truthy(whole.ok_response, JSON.stringify(whole.denied_response));
  const half = await svc.check(checkRequest({ path: '/mcp/open', body: withArgument('"\\ud83d and 😀"') }));
  t.is(deniedStatus(half), 400);
  t.is(deniedBody(half).error, 'lone_surrogate');
});

test('at the largest configurable bound (1000) a body nested that deep is still decided, with the opa-envoy-plugin input', async (t) => {
  t.throws(() => validateConfig({ limits: { maxJsonDepth: 1001 } }, 'test', '.', {}), { message: /maxJsonDepth/ });
  const { svc } = await serve({ limits: { maxJsonDepth: 1000 }, policy: { envoyInput: true } });
  const atBound = await svc.check(checkRequest({ path: '/mcp/open', body: withArgument(nested(997)) }));
  t.truthy(atBound.ok_response, JSON.stringify(atBound.denied_response));
  const over = await svc.check(checkRequest({ path: '/mcp/open', body: withArgument(nested(998)) }));
  t.is(deniedBody(over).error, 'json_too_deep');
});

test('limits.maxJsonDepth sets the nesting bound', async (t) => {
  const { svc } = await serve({ limits: { maxJsonDepth: 8 } });
  const atBound = await svc.check(checkRequest({ path: '/mcp/open', body: withArgument(nested(5)) }));
  t.truthy(atBound.ok_response);
  const over = await svc.check(checkRequest({ path: '/mcp/open', body: withArgument(nested(6)) }));
  t.is(deniedStatus(over), 400);
  t.regex(deniedBody(over).error_description, /deeper than 8 levels \(limits\.maxJsonDepth\)/);
});

const ambiguous: [string, string][] = [
  [
    '"Name" beside "name"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"delete_file"}}',
  ],
  ['"NAME" alone in params', '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"NAME":"delete_file"}}'],
  [
    '"Method" beside "method"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/list","Method":"tools/call","params":{"name":"delete_file"}}',
  ],
  [
    '"paramſ" beside "params"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"},"paramſ":{"name":"delete_file"}}',
  ],
  [
    'an escaped "param\\u017f"',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"},"param\\u017f":{"name":"delete_file"}}',
  ],
  [
    'a response that Go reads as a call',
    '{"jsonrpc":"2.0","id":1,"result":{},"Method":"tools/call","Params":{"Name":"delete_file"}}',
  ],
  [
    '"Id" (Go: a request, others: a notification)',
    '{"jsonrpc":"2.0","Id":1,"method":"tools/call","params":{"name":"search"}}',
  ],
  [
    'a Kelvin sign in "\u212aey" beside "key" in the arguments',
    '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"key":"a","\u212aey":"b"}}}',
  ],
  [
    '"URI" beside "uri"',
    '{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"file:///public/a","URI":"file:///secret/b"}}',
  ],
  [
    'a batch element with "Name"',
    '[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"search","Name":"delete_file"}}]',
  ],
];

for (const [what, body] of ambiguous) {
  test(`a body with ${what} is 400 ambiguous_json_key`, async (t) => {
    const { svc } = await serve({});
    const res = await svc.check(checkRequest({ path: '/mcp/open', body }));
    t.is(deniedStatus(res), 400);
    t.is(deniedBody(res).error, 'ambiguous_json_key');
    t.false(deniedBody(res).error_description.includes('delete_file'), 'the description names keys, never values');
  });
}

const notJsonRpc: [string, string][] = [
  [
    'a null id (Go: a notification, others: a request)',
    '{"jsonrpc":"2.0","id":null,"method":"tools/call","params":{"name":"search"}}',
  ],
  ['a method beside a result', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"},"result":{}}'],
  ['a null result', '{"jsonrpc":"2.0","id":1,"result":null}'],
  ['a response without an id', '{"jsonrpc":"2.0","result":{}}'],
  ['params given as an array', '{"jsonrpc":"2.0","id":1,"method":"tools/list","params":["delete_file"]}'],
];

for (const [what, body] of notJsonRpc) {
  test(`a body with ${what} is 400 invalid_jsonrpc`, async (t) => {
    const { svc } = await serve({});
    const res = await svc.check(checkRequest({ path: '/mcp/open', body }));
    t.is(deniedStatus(res), 400);
    t.is(deniedBody(res).error, 'invalid_jsonrpc');
  });
}
