// The body reader's promise, as a differential property: for any body mcp-authz allows, the
// MCP servers behind it — JavaScript (JSON.parse), Python (json) and Go (encoding/json) —
// read the same batch shape and, per message, the same kind, method, params.name,
// params.uri and params.ref as the policy did. The generator aims at where those readers
// part: member names in other cases or with look-alike letters (ſ, K), duplicate keys,
// escapes, lone surrogates, invalid UTF-8, null members, batches and deep nesting.
import { isUtf8 } from 'node:buffer';
import test from 'ava';
import fc from 'fast-check';
import { toRequest, type WireCheckRequest } from '../src/envoy/to-request.js';
import { checkBodyIntegrity } from '../src/request/body-integrity.js';
import { normalizeResourceTemplate, normalizeResourceUri } from '../src/request/normalize-resource-uri.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { RequestRejected } from '../src/contracts/request-rejected.js';
import { listCallsOf } from '../src/ext-proc/list-calls.js';
import { filterJsonBody } from '../src/mcp-response/list-filter.js';
import { GoJsonReader, goFoldTable, goMcpServerPath } from './e2e/go-mcp-server.js';
import { LineReader, pythonReader } from './helpers/line-readers.js';
import {
  decodeGo,
  goFold,
  parseTree,
  readGo,
  readJs,
  readPython,
  type CallReading,
  type Reading,
  type Tree,
} from './helpers/json-readers.js';
import { checkRequest } from './helpers/service.js';

const fold = goFold(goFoldTable());

// ---------------------------------------------------------------- the generator

/** JSON source text with what the generator put in it on purpose. */
interface Piece {
  src: string;
  tags: string[];
}

const piece = (src: string, ...tags: string[]): Piece => ({ src, tags });
const joined = (pieces: Piece[], wrap: (srcs: string[]) => string): Piece => ({
  src: wrap(pieces.map((p) => p.src)),
  tags: pieces.flatMap((p) => p.tags),
});
const hex = (c: string, upper: boolean) => {
  const h = c.charCodeAt(0).toString(16).padStart(4, '0');
  return `\\u${upper ? h.toUpperCase() : h}`;
};

/** A key spelled as `name`; now and then in other cases, with ſ/K look-alikes, or with \u escapes. */
function keyOf(name: string): fc.Arbitrary<Piece> {
  const positions = fc.uniqueArray(fc.nat({ max: name.length - 1 }), {
    minLength: 1,
    maxLength: Math.min(3, name.length),
  });
  const none = fc.constant<number[]>([]);
  const spelled = (upper: fc.Arbitrary<number[]>, lookAlike: boolean, escapes: fc.Arbitrary<number[]>) =>
    fc.tuple(upper, escapes, fc.boolean()).map(([up, esc, hexUpper]) => {
      let chars = [...name].map((c, i) => (up.includes(i) ? c.toUpperCase() : c));
      if (lookAlike) chars = chars.map((c) => (c === 's' ? 'ſ' : c === 'k' ? '\u212a' : c));
      const src = `"${chars.map((c, i) => (esc.includes(i) ? hex(c, hexUpper) : c)).join('')}"`;
      return piece(src, ...(esc.length > 0 ? ['escaped-key'] : []));
    });
  return fc.oneof(
    { weight: 50, arbitrary: fc.constant(piece(JSON.stringify(name))) },
    { weight: 2, arbitrary: spelled(positions, false, none) },
    { weight: 1, arbitrary: spelled(/[sk]/.test(name) ? none : positions, true, none) },
    { weight: 2, arbitrary: spelled(none, false, positions) },
    { weight: 1, arbitrary: spelled(positions, true, positions) },
  );
}

// Placeholders for byte sequences that are not UTF-8, put in when the text becomes bytes.
const BAD_BYTES: Record<string, number[]> = {
  '\ue000': [0xff],
  '\ue001': [0xed, 0xa0, 0x80], // a surrogate encoded as UTF-8 (Python's surrogatepass reads it)
  '\ue002': [0xe2, 0x82], // a cut three-byte sequence
  '\ue003': [0xc0, 0xaf], // an overlong "/"
};
const INSERTS: [string, string[]][] = [
  ['\\ud800', ['lone-surrogate']],
  ['\\ud83d', ['lone-surrogate']],
  ['\\ude00', ['lone-surrogate']],
  ['\\udc00\\ud800', ['lone-surrogate']],
  ['\\ud83d\\ude00', []],
  ['😀', []],
  ['\\u0073', []],
  ...Object.keys(BAD_BYTES).map((p): [string, string[]] => [p, ['invalid-utf8']]),
];

/** A string from `pool`, sometimes with an escape, a surrogate or a bad byte inside. */
function stringOf(pool: string[]): fc.Arbitrary<Piece> {
  const plain = fc.constantFrom(...pool).map((s) => piece(JSON.stringify(s)));
  const spiked = fc
    .tuple(fc.constantFrom(...pool), fc.constantFrom(...INSERTS), fc.nat())
    .map(([s, [insert, tags], at]) => {
      const cut = at % (s.length + 1);
      return piece(`"${s.slice(0, cut)}${insert}${s.slice(cut)}"`, ...tags);
    });
  return fc.oneof({ weight: 12, arbitrary: plain }, { weight: 1, arbitrary: spiked });
}

const pair = (key: fc.Arbitrary<Piece>, value: fc.Arbitrary<Piece>) =>
  fc.tuple(key, value).map(([k, v]) => joined([k, v], ([a, b]) => `${a}:${b}`));
const sometimes = (a: fc.Arbitrary<Piece>, weight: number) =>
  fc.oneof({ weight, arbitrary: a }, { weight: 10 - weight, arbitrary: fc.constant(null) });

/** An object of the given members (each there or not), plus up to two more, first or last. */
function objectOf(members: fc.Arbitrary<Piece | null>[], extra: fc.Arbitrary<Piece>): fc.Arbitrary<Piece> {
  const extras = fc.oneof(
    { weight: 4, arbitrary: fc.constant([]) },
    { weight: 1, arbitrary: fc.array(fc.tuple(extra, fc.boolean()), { minLength: 1, maxLength: 2 }) },
  );
  return fc.tuple(fc.tuple(...members), extras).map(([present, extras]) => {
    const items = present.filter((p): p is Piece => p !== null);
    for (const [e, first] of extras) {
      if (first) items.unshift(e);
      else items.push(e);
    }
    return joined(items, (s) => `{${s.join(',')}}`);
  });
}

const METHODS = [
  'tools/call',
  'tools/list',
  'resources/read',
  'prompts/get',
  'completion/complete',
  'ping',
  'notifications/initialized',
  'subscriptions/listen',
  'logging/setLevel',
  'prompts/list',
  'resources/templates/list',
];
const NAMES = ['search', 'delete_file'];
const URIS = ['file:///public/a', 'file:///secret/b'];

const leaf = fc.oneof(
  stringOf(['x', '/etc/passwd']),
  fc.constantFrom('1', 'true', 'null', '{}').map((s) => piece(s)),
);
const argumentKey = fc.oneof(
  keyOf('path'),
  keyOf('query'),
  fc.constantFrom('"k"', '"K"', '"\\u212a"', '"Key"', '"kEY"', '"ß"', '"ẞ"').map((s) => piece(s)),
);
const { argument } = fc.letrec<{ argument: Piece }>((tie) => ({
  argument: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    { weight: 4, arbitrary: leaf },
    {
      weight: 2,
      arbitrary: fc
        .array(pair(argumentKey, tie('argument')), { maxLength: 3 })
        .map((ps) => joined(ps, (s) => `{${s.join(',')}}`)),
    },
    {
      weight: 1,
      arbitrary: fc.array(tie('argument'), { maxLength: 2 }).map((ps) => joined(ps, (s) => `[${s.join(',')}]`)),
    },
  ),
}));
const nestedArgument = fc.integer({ min: 55, max: 70 }).map((n) => piece(`${'['.repeat(n)}${']'.repeat(n)}`));
const argumentsValue = fc.oneof({ weight: 9, arbitrary: argument }, { weight: 1, arbitrary: nestedArgument });

const refValue = objectOf(
  [
    sometimes(pair(keyOf('type'), stringOf(['ref/prompt', 'ref/resource'])), 9),
    sometimes(pair(keyOf('name'), stringOf(NAMES)), 6),
    sometimes(pair(keyOf('uri'), stringOf(URIS)), 3),
  ],
  fc.oneof(pair(keyOf('type'), stringOf(['ref/prompt'])), pair(keyOf('name'), stringOf(NAMES))),
);
const paramsValue = fc.oneof(
  {
    weight: 12,
    arbitrary: objectOf(
      [
        sometimes(pair(keyOf('name'), stringOf(NAMES)), 8),
        sometimes(pair(keyOf('uri'), stringOf(URIS)), 3),
        sometimes(pair(keyOf('arguments'), argumentsValue), 5),
        sometimes(pair(keyOf('ref'), refValue), 2),
        sometimes(pair(keyOf('_meta'), fc.constant(piece('{"progressToken":1}'))), 1),
      ],
      fc.oneof(
        pair(keyOf('name'), stringOf(NAMES)),
        pair(keyOf('uri'), stringOf(URIS)),
        pair(keyOf('arguments'), argumentsValue),
      ),
    ),
  },
  { weight: 1, arbitrary: fc.constantFrom('null', '[]', '["delete_file"]').map((s) => piece(s)) },
);
const idValue = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom('1', '"a"', '-2.5e3').map((s) => piece(s)) },
  { weight: 1, arbitrary: fc.constantFrom('null', 'true').map((s) => piece(s)) },
);
const answer = fc.constantFrom('{}', '{"content":[]}', 'null', '{"code":-1,"message":"no"}').map((s) => piece(s));

const message = objectOf(
  [
    sometimes(
      pair(
        keyOf('jsonrpc'),
        fc.oneof(
          { weight: 20, arbitrary: fc.constant(piece('"2.0"')) },
          { weight: 1, arbitrary: fc.constant(piece('"1.0"')) },
        ),
      ),
      9,
    ),
    sometimes(pair(keyOf('id'), idValue), 8),
    sometimes(pair(keyOf('method'), stringOf(METHODS)), 9),
    sometimes(pair(keyOf('params'), paramsValue), 7),
    sometimes(pair(fc.constantFrom('result', 'error').chain(keyOf), answer), 1),
  ],
  fc.oneof(
    pair(keyOf('method'), stringOf(METHODS)),
    pair(keyOf('params'), paramsValue),
    pair(keyOf('id'), idValue),
    pair(fc.constantFrom('result', 'error').chain(keyOf), answer),
    pair(keyOf('jsonrpc'), fc.constant(piece('"2.0"'))),
  ),
);
const bodyText = fc.oneof(
  { weight: 4, arbitrary: message },
  {
    weight: 1,
    arbitrary: fc.array(message, { minLength: 1, maxLength: 3 }).map((ms) => joined(ms, (s) => `[${s.join(',')}]`)),
  },
);

interface Body {
  text: string;
  bytes: Buffer;
  tags: string[];
}

const body: fc.Arbitrary<Body> = bodyText.map(({ src, tags }) => ({
  text: src,
  bytes: Buffer.concat(src.split(/([\ue000-\ue003])/).map((part) => Buffer.from(BAD_BYTES[part] ?? part))),
  tags,
}));

// ---------------------------------------------------------------- readings

/** What mcp-authz's policy sees, or undefined when the service refuses the body (400). */
function serviceReading(bytes: Buffer): Reading | undefined {
  try {
    const request = toRequest(checkRequest({ path: '/mcp', rawBody: bytes }) as WireCheckRequest, {
      maxBodyBytes: 1 << 20,
      maxHeaderBytes: 65536,
      maxHeaders: 200,
    });
    checkBodyIntegrity(request, 1 << 20);
    const { view } = parseMcp(request.body, request.hasBody, request.headers, 64);
    const calls = view.calls.map((c): CallReading => {
      const out: CallReading = { kind: c.kind };
      if (c.method !== '') out.method = c.method;
      if (c.name !== undefined) out.name = c.name;
      if (c.uri !== undefined) out.uri = c.uri;
      if (c.ref !== undefined)
        out.ref =
          c.ref.type === 'ref/prompt' ? { type: c.ref.type, name: c.ref.name } : { type: c.ref.type, uri: c.ref.uri };
      return out;
    });
    return { ok: true, batch: view.batch, calls };
  } catch (err) {
    if (err instanceof RequestRejected && err.status === 400) return undefined;
    throw err;
  }
}

const MEMBER_ROLES: Record<string, string[]> = {
  message: ['jsonrpc', 'id', 'method', 'params', 'result', 'error'],
  params: ['name', 'uri', 'arguments', 'ref', 'notifications', '_meta'],
  ref: ['type', 'name', 'uri'],
};

/** The shapes a body has, found in it (not taken from the generator's intent). */
function shapesOf(b: Body): Set<string> {
  const shapes = new Set(b.tags);
  if (!isUtf8(b.bytes)) shapes.add('invalid-utf8');
  const tree = parseTree(decodeGo(b.bytes), { nonFinite: false, loneSurrogate: 'keep', maxDepth: 10000 });
  if (tree === undefined) return shapes;
  if (tree.t === 'arr') shapes.add('batch');
  const walk = (t: Tree, role: string | undefined, depth: number): number => {
    if (t.t === 'arr')
      return Math.max(depth + 1, ...t.items.map((x) => walk(x, role === 'batch' ? 'message' : undefined, depth + 1)));
    if (t.t !== 'obj') return depth;
    const seen = new Map<string, string>();
    let deepest = depth + 1;
    for (const [k, v] of t.pairs) {
      const f = fold(k);
      const other = seen.get(f);
      if (other === k) shapes.add('duplicate-key');
      else if (other !== undefined) shapes.add('keys-alike-in-go');
      seen.set(f, k);
      if (/[ſ\u212a]/.test(k)) shapes.add('look-alike-key');
      const member = role === undefined ? undefined : MEMBER_ROLES[role]!.find((m) => fold(m) === f);
      if (member !== undefined && member !== k) shapes.add('member-spelled-otherwise');
      if (role === 'message' && k === 'id' && v.t === 'lit' && v.v === null) shapes.add('null-id');
      const child =
        role === 'message' && k === 'params' ? 'params' : role === 'params' && k === 'ref' ? 'ref' : undefined;
      deepest = Math.max(deepest, walk(v, child, depth + 1));
    }
    return deepest;
  };
  if (walk(tree, tree.t === 'arr' ? 'batch' : 'message', 0) > 64) shapes.add('deeper-than-64');
  return shapes;
}

const same = (a: Reading, b: Reading) => JSON.stringify(a) === JSON.stringify(b);

/**
 * What a decision depends on: a response is dispatched by nobody, so its params do not count;
 * params.uri is a target only of resources/* calls, and the policy sees it normalized;
 * params.ref only of completion/complete: the prompt's name, or the resource's URI or
 * template, normalized.
 */
function decisive(r: Reading): Reading {
  if (!r.ok) return r;
  return {
    ...r,
    calls: r.calls.map((c) => (c.kind === 'response' ? { kind: c.kind } : withTargetRef(withTargetUri(c)))),
  };
}

function withTargetRef(c: CallReading): CallReading {
  if (c.ref === undefined) return c;
  const { ref, ...rest } = c;
  if (c.method !== 'completion/complete') return rest;
  if (ref.type === 'ref/prompt' && ref.name !== undefined) return { ...rest, ref: { type: ref.type, name: ref.name } };
  if (ref.type === 'ref/resource' && ref.uri !== undefined) {
    try {
      return { ...rest, ref: { type: ref.type, uri: normalizeResourceTemplate(ref.uri) } };
    } catch {
      return c; // the service refuses such a template: nothing is decided on it
    }
  }
  return c; // the service refuses a completion without a ref it can name
}

function withTargetUri(c: CallReading): CallReading {
  if (c.uri === undefined) return c;
  const { uri, ...rest } = c;
  if (!c.method?.startsWith('resources/')) return rest;
  try {
    return { ...rest, uri: normalizeResourceUri(uri) };
  } catch {
    return c; // the service refuses such a URI: nothing is decided on it
  }
}

// ---------------------------------------------------------------- the properties

test('whatever mcp-authz allows, JavaScript, Python and Go read alike, and as the policy did', (t) => {
  const counts = new Map<string, number>();
  const count = (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1);
  const runs = 6000;
  fc.assert(
    fc.property(body, (b) => {
      const readings = {
        js: decisive(readJs(b.bytes)),
        python: decisive(readPython(b.bytes)),
        go: decisive(readGo(b.bytes, fold)),
      };
      const agree = same(readings.js, readings.python) && same(readings.js, readings.go);
      const service = serviceReading(b.bytes);
      const shapes = shapesOf(b);
      count('runs');
      for (const s of shapes) count(s);
      if (!agree) count('readers disagree');
      if (service === undefined) return true;
      count('allowed');
      for (const s of shapes) count(`allowed with ${s}`);
      return readings.js.ok && agree && same(readings.js, decisive(service));
    }),
    { numRuns: runs },
  );
  t.log(Object.fromEntries([...counts].sort()));
  // The generator must reach the attack shapes often, and the service must still allow a
  // good share of bodies, or the property would hold for want of trying.
  const share = (what: string) => (counts.get(what) ?? 0) / runs;
  for (const shape of [
    'member-spelled-otherwise',
    'keys-alike-in-go',
    'look-alike-key',
    'escaped-key',
    'duplicate-key',
    'lone-surrogate',
    'invalid-utf8',
    'null-id',
    'batch',
    'deeper-than-64',
  ]) {
    t.true(share(shape) >= 0.02, `${shape}: ${counts.get(shape) ?? 0} of ${runs}`);
  }
  t.true(share('readers disagree') >= 0.2, `readers disagree on ${counts.get('readers disagree') ?? 0} of ${runs}`);
  t.true(share('allowed') >= 0.15, `allowed ${counts.get('allowed') ?? 0} of ${runs}`);
  t.true(share('allowed with escaped-key') >= 0.01, 'keys spelled exactly through escapes are allowed');
  t.true(share('allowed with batch') >= 0.01, 'batches are allowed');
});

test("the Go model reads bodies as Go's encoding/json does", async (t) => {
  const reader = new GoJsonReader();
  t.teardown(() => reader.close());
  const samples = fc.sample(body, { numRuns: 400, seed: 20260728 });
  let parsed = 0;
  for (const b of samples) {
    const model = readGo(b.bytes, fold);
    const go = await reader.read(b.bytes);
    if (go.ok) parsed++;
    const real: Reading = go.ok
      ? { ok: true, batch: go.batch, calls: (go.calls ?? []) as CallReading[] }
      : { ok: false };
    if (!same(model, real)) t.fail(`${b.text}\nmodel: ${JSON.stringify(model)}\nGo:    ${JSON.stringify(real)}`);
  }
  t.true(parsed > 300, `Go parsed ${parsed} of ${samples.length}`);
});

// ---------------------------------------------------------------- request ids

// A list result is matched to its call by the id the server echoes. The id is read by the
// service (JSON.parse) and by the server in its own language, written back by the server, and
// the echo read by the service again: what the service matches must be what every server
// echoes. The generator aims at numbers readers hold differently — beyond a 64-bit float,
// integers past 2^53, -0, 1.0 against 1, exponents, long mantissas — and at strings that look
// like numbers.

/** The JSON text of an id. */
const idText: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc
      .tuple(
        fc.constantFrom('', '', '-'),
        fc.oneof(
          fc.constant('0'),
          fc
            .tuple(fc.integer({ min: 1, max: 9 }), fc.stringMatching(/^[0-9]{0,25}$/))
            .map(([d, rest]) => `${d}${rest}`),
        ),
        fc.option(fc.stringMatching(/^[0-9]{1,20}$/), { nil: undefined }),
        fc.option(
          fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), fc.integer({ min: 0, max: 420 })),
          { nil: undefined },
        ),
      )
      .map(
        ([sign, int, frac, exp]) =>
          `${sign}${int}${frac === undefined ? '' : `.${frac}`}${exp === undefined ? '' : `${exp[0]}${exp[1]}${exp[2]}`}`,
      ),
  },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      '1e400',
      '-1e400',
      '1E+400',
      '1e-400',
      '9007199254740991',
      '-9007199254740991',
      '9007199254740992',
      '9007199254740993',
      '18446744073709551616',
      '-0',
      '-0.0',
      '0e0',
      '1.0',
      '1e2',
      '1E+2',
      '4.9e-324',
      '1.7976931348623157e308',
      '1.7976931348623159e308',
      '0.30000000000000000001',
      '123456789012345678901234567890',
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .oneof(fc.constantFrom('1', '1.0', '-0', '1e400', ' 1', 'null'), fc.string({ maxLength: 8 }))
      .map((x) => JSON.stringify(x)),
  },
);

interface Echo {
  ok: boolean;
  echo?: string;
}

test('whatever id mcp-authz accepts on a list call, JavaScript, Python and Go servers echo as an id the filter matches to it; no echo ever passes a hidden item', async (t) => {
  const python = pythonReader<Echo>('echo-id');
  const go = new LineReader<Echo>(goMcpServerPath(), ['echo-id']);
  t.teardown(() => {
    python.close();
    go.close();
  });
  const counts = new Map<string, number>();
  const count = (what: string) => counts.set(what, (counts.get(what) ?? 0) + 1);
  const ids = fc.sample(idText, { numRuns: 1500, seed: 20241105 });
  for (const id of ids) {
    const body = `{"jsonrpc":"2.0","id":${id},"method":"tools/list"}`;
    let accepted = true;
    try {
      parseMcp(body, true, {});
    } catch (err) {
      if (!(err instanceof RequestRejected)) throw err;
      t.is(err.code, 'invalid_request_id', id);
      accepted = false;
    }
    count(accepted ? 'accepted' : 'refused');
    const echoes: Record<string, Echo> = {
      js: { ok: true, echo: JSON.stringify((JSON.parse(body) as { id: unknown }).id) },
      python: await python.read(body),
      go: await go.read(body),
    };
    const values = new Set(Object.values(echoes).map((e) => (e.ok ? e.echo : 'unread')));
    if (values.size > 1) count(accepted ? 'echoed differently, accepted' : 'echoed differently, refused');
    if (echoes.js.echo === 'null') count('echoed as null by JavaScript');
    // The list call the service would filter for; a refused request never reaches the upstream.
    const calls = listCallsOf(JSON.parse(body));
    if (calls === undefined) {
      t.fail(`${id}: not read as a list call`);
      continue;
    }
    for (const [server, e] of Object.entries(echoes)) {
      if (!e.ok) continue; // the server could not read the id: it answers an error, never the list
      const response = `{"jsonrpc":"2.0","id":${e.echo},"result":{"tools":[{"name":"visible"},{"name":"hidden"}]}}`;
      const r = filterJsonBody(response, calls, () => (item) => item.key === 'visible');
      if (r.ok) t.false(r.body.includes('hidden'), `${id} echoed by ${server} as ${e.echo}: the hidden item passed`);
      if (accepted)
        t.true(r.ok && r.changed, `${id} echoed by ${server} as ${e.echo}: ${r.ok ? 'not matched' : r.code}`);
    }
  }
  t.log(Object.fromEntries([...counts].sort()));
  t.true((counts.get('accepted') ?? 0) >= 600, 'most ids are accepted');
  t.true((counts.get('refused') ?? 0) >= 100, 'the generator reaches the ids that are refused');
  t.true((counts.get('echoed as null by JavaScript') ?? 0) >= 20, 'and the ones JavaScript echoes as null');
  t.true(
    (counts.get('echoed differently, accepted') ?? 0) >= 50,
    'accepted ids are echoed in other forms (1.0, 1e2, -0), which still match',
  );
});
