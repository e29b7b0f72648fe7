// The documented order of the body checks (docs/json-bodies.md "The order of the checks",
// BODY_CHECK_ORDER in src/request/body-integrity.ts): for every pair of body problems present
// at once — in either order in the body — the answer names the one ranked first, on gRPC
// Check, Envoy's HTTP authorization service and ext_proc alike, through the real server.
import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import test from 'ava';
import { BODY_CHECK_ORDER, type BodyCheckCode } from '../src/request/body-integrity.js';
import { immediateStatus, processExchange, requestBody, requestHeaders } from './helpers/ext-proc.js';
import { checkRequest, deniedBody, deniedStatus, startTestService, type TestService } from './helpers/service.js';

const MAX_BODY = 2048;
const MAX_DEPTH = 16;
const PREFIX = '/authz';

type Transport = 'check' | 'http' | 'ext_proc';
const TRANSPORTS: Transport[] = ['check', 'http', 'ext_proc'];

/** A request being built: headers, body members placed in order, and what happens to the bytes. */
interface Built {
  headers: [string, string][];
  members: Buffer[];
  /** Content-Length: 'body' (its real length), a number, a raw string, or absent. */
  contentLength: 'body' | number | string | undefined;
  noBody: boolean;
  pad: boolean;
  trailing: string;
}

interface Problem {
  name: string;
  code: BodyCheckCode;
  /** Transports that can carry it (Envoy's HTTP service forwards a body with its real Content-Length). */
  on: Transport[];
  /** Problems it cannot be combined with (they set the same thing). */
  excludes?: string[];
  apply(b: Built): void;
}

const member = (json: string) => Buffer.from(json);
const BODY_PROBLEMS = [
  'too large',
  'not UTF-8',
  'too deep',
  'not JSON',
  'lone surrogate',
  'duplicate key',
  'ambiguous key',
];

const PROBLEMS: Problem[] = [
  {
    name: 'Content-Length not a number',
    code: 'invalid_content_length',
    on: ['check', 'ext_proc'],
    excludes: ['Content-Length above the body', 'declared but not sent'],
    apply: (b) => void (b.contentLength = '12abc'),
  },
  {
    name: 'gzip',
    code: 'unsupported_content_encoding',
    on: TRANSPORTS,
    apply: (b) => void b.headers.push(['content-encoding', 'gzip']),
  },
  {
    name: 'partial body',
    code: 'body_truncated',
    on: TRANSPORTS,
    apply: (b) => void b.headers.push(['x-envoy-auth-partial-body', 'true']),
  },
  {
    name: 'Content-Length above the body',
    code: 'body_truncated',
    on: ['check', 'ext_proc'],
    excludes: ['declared but not sent'],
    apply: (b) => void (b.contentLength = 100_000),
  },
  {
    name: 'declared but not sent',
    code: 'body_truncated',
    on: ['check', 'ext_proc'],
    excludes: BODY_PROBLEMS,
    apply: (b) => {
      b.noBody = true;
      b.contentLength = 120;
    },
  },
  { name: 'too large', code: 'body_too_large', on: TRANSPORTS, apply: (b) => void (b.pad = true) },
  {
    name: 'not UTF-8',
    code: 'invalid_utf8',
    on: TRANSPORTS,
    apply: (b) => void b.members.push(Buffer.concat([member('"u":"caf'), Buffer.from([0xe9]), member('"')])),
  },
  {
    name: 'too deep',
    code: 'json_too_deep',
    on: TRANSPORTS,
    apply: (b) => void b.members.push(member(`"x":${'['.repeat(MAX_DEPTH + 4)}${']'.repeat(MAX_DEPTH + 4)}`)),
  },
  { name: 'not JSON', code: 'invalid_json', on: TRANSPORTS, apply: (b) => void b.members.push(member('"j":tru')) },
  {
    name: 'lone surrogate',
    code: 'lone_surrogate',
    on: TRANSPORTS,
    apply: (b) => void b.members.push(member('"s":"sea\\ud800rch"')),
  },
  {
    name: 'duplicate key',
    code: 'duplicate_json_key',
    on: TRANSPORTS,
    apply: (b) => void b.members.push(member('"dup":{"a":1,"a":2}')),
  },
  {
    name: 'ambiguous key',
    code: 'ambiguous_json_key',
    on: TRANSPORTS,
    apply: (b) => void b.members.push(member('"amb":{"k":1,"K":2}')),
  },
];

function build(problems: Problem[]): { headers: [string, string][]; body: Buffer | undefined } {
  const b: Built = { headers: [], members: [], contentLength: 'body', noBody: false, pad: false, trailing: '' };
  for (const p of problems) p.apply(b);
  if (b.noBody) return { headers: [...b.headers, ['content-length', String(b.contentLength)]], body: undefined };
  const parts = [member('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}')];
  for (const m of b.members) parts.push(member(','), m);
  parts.push(member('}'));
  if (b.pad) parts.push(Buffer.alloc(MAX_BODY + 100, 0x20));
  const body = Buffer.concat(parts);
  const headers = [...b.headers];
  if (b.contentLength !== undefined)
    headers.push(['content-length', b.contentLength === 'body' ? String(body.length) : String(b.contentLength)]);
  return { headers, body };
}

let svc: TestService;

test.before(async () => {
  svc = await startTestService({
    listen: { extAuthzHttp: 'any' },
    extAuthzHttp: { pathPrefix: PREFIX },
    clientAddress: { from: 'x-forwarded-for', trustedHops: 1 },
    limits: { maxBodyBytes: MAX_BODY, maxJsonDepth: MAX_DEPTH },
    endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
  });
});
test.after.always(async () => svc?.stop());

/** The deny's status and code, as the transport answered. */
async function send(
  transport: Transport,
  req: { headers: [string, string][]; body: Buffer | undefined },
): Promise<{ status: number; code: string }> {
  if (transport === 'check') {
    const headers = Object.fromEntries(req.headers.map(([k, v]) => [k, v]));
    const res = await svc.check(
      checkRequest({ path: '/mcp/open', headers, noContentLength: true, ...(req.body ? { rawBody: req.body } : {}) }),
    );
    return { status: deniedStatus(res) ?? 200, code: res.ok_response ? 'allowed' : deniedBody(res).error };
  }
  if (transport === 'ext_proc') {
    const messages = [requestHeaders({ method: 'POST', path: '/mcp/open', headers: req.headers })];
    // The helper sets no Content-Length without a body; the body follows the headers, as Envoy sends it BUFFERED.
    messages[0]!.request_headers!.end_of_stream = req.body === undefined;
    if (req.body) messages.push(requestBody(req.body));
    const { answers } = await processExchange(`127.0.0.1:${svc.grpcPort}`, messages);
    const im = answers.find((a) => a.immediate_response)?.immediate_response;
    return im
      ? { status: immediateStatus(im), code: JSON.parse(im.body.toString('utf8')).error }
      : { status: 200, code: 'allowed' };
  }
  return new Promise((resolve, reject) => {
    const r = httpRequest(
      {
        host: '127.0.0.1',
        port: svc.extAuthzHttpPort,
        method: 'POST',
        path: `${PREFIX}/mcp/open`,
        headers: [['host', 'mcp.example.com'], ...req.headers].flat() as unknown as Record<string, string>,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({
            status: res.statusCode!,
            code: res.statusCode === 200 ? 'allowed' : JSON.parse(Buffer.concat(chunks).toString()).error,
          }),
        );
      },
    );
    r.on('error', reject);
    r.end(req.body ?? Buffer.alloc(0));
  });
}

const first = (...codes: BodyCheckCode[]) =>
  codes.reduce((a, b) => (BODY_CHECK_ORDER.indexOf(b) < BODY_CHECK_ORDER.indexOf(a) ? b : a));

test('a gzip-compressed JSON-RPC body is 415 unsupported_content_encoding on every transport, though its bytes are not UTF-8', async (t) => {
  const body = gzipSync(Buffer.from('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}'));
  t.false(Buffer.from(body.toString('utf8')).equals(body), 'the compressed bytes are not UTF-8');
  for (const transport of TRANSPORTS) {
    const got = await send(transport, {
      headers: [
        ['content-encoding', 'gzip'],
        ['content-length', String(body.length)],
      ],
      body,
    });
    t.deepEqual(got, { status: 415, code: 'unsupported_content_encoding' }, transport);
  }
});

test('every problem alone is answered with its own code on every transport that can carry it', async (t) => {
  for (const p of PROBLEMS) {
    for (const transport of p.on) {
      const got = await send(transport, build([p]));
      t.is(got.code, p.code, `${p.name} over ${transport}`);
    }
  }
  t.deepEqual(
    new Set(PROBLEMS.map((p) => p.code)),
    new Set(BODY_CHECK_ORDER),
    'every code of the order has a problem here',
  );
});

test('for every pair of body problems, in either order, every transport answers the one the documented order puts first', async (t) => {
  let pairs = 0;
  for (let i = 0; i < PROBLEMS.length; i++) {
    for (let j = 0; j < PROBLEMS.length; j++) {
      if (i === j) continue;
      const [a, b] = [PROBLEMS[i]!, PROBLEMS[j]!];
      if (a.excludes?.includes(b.name) || b.excludes?.includes(a.name)) continue;
      const want = first(a.code, b.code);
      // Both placements: a's member before b's, then (the other way round, j < i) after.
      const req = build([a, b]);
      const answers: string[] = [];
      for (const transport of TRANSPORTS.filter((x) => a.on.includes(x) && b.on.includes(x))) {
        const got = await send(transport, req);
        answers.push(`${transport}: ${got.code}`);
        t.is(got.code, want, `${a.name} then ${b.name} over ${transport}`);
      }
      t.true(answers.length > 0);
      pairs++;
    }
  }
  t.true(pairs >= 110, `${pairs} ordered pairs`);
});

test('docs/json-bodies.md lists the body checks in the order the service applies them', (t) => {
  const doc = readFileSync(join(import.meta.dirname, '..', 'docs', 'json-bodies.md'), 'utf8');
  const section = doc.slice(doc.indexOf('## The order of the checks'));
  t.true(section.length > 0);
  const listed = [...section.slice(0, section.indexOf('\n## ', 5)).matchAll(/^\d+\. `([a-z_0-9]+)`/gm)].map(
    (m) => m[1],
  );
  t.deepEqual(listed, [...BODY_CHECK_ORDER]);
});
