// The differential rule for approvals: a digest binds an approval to the arguments as
// mcp-authz read them, so every MCP server behind it must read the same arguments. For any
// tools/call body the service accepts and the digest's canonicalizer takes, Python's json
// module and Go's encoding/json (each canonicalizing its own reading, RFC 8785, in its own
// language: test/readers/) produce the same canonical text. What they could read apart —
// repeated keys, keys equal under Go's folding, lone surrogates, integers beyond ±(2^53−1),
// numbers beyond a 64-bit float — is refused, never digested.
import test from 'ava';
import fc from 'fast-check';
import { CanonicalJsonError, canonicalJson } from '../src/contracts/jcs.js';
import { RequestRejected } from '../src/contracts/request-rejected.js';
import { toRequest, type WireCheckRequest } from '../src/envoy/to-request.js';
import { checkBodyIntegrity } from '../src/request/body-integrity.js';
import { parseMcp } from '../src/request/json-rpc.js';
import { spell, text, value } from './helpers/json-spellings.js';
import { goReader, pythonReader } from './helpers/line-readers.js';
import { checkRequest } from './helpers/service.js';

type JcsReading = { ok: true; canonical: string } | { ok: false; error: string };

/** A member readers could read apart, and whether the digest must refuse it. */
interface Hazard {
  member: string;
  refuse: boolean;
  tag: string;
}

const hazard: fc.Arbitrary<Hazard> = fc.constantFrom<Hazard>(
  { member: '"a":1,"a":2', refuse: true, tag: 'duplicate key' },
  { member: '"key":1,"Key":2', refuse: true, tag: 'keys equal under Go folding' },
  { member: '"k":1,"\u212a":2', refuse: true, tag: 'Kelvin sign folds to k' },
  { member: '"s":"\\ud800"', refuse: true, tag: 'lone high surrogate' },
  { member: '"s":"x\\udfff"', refuse: true, tag: 'lone low surrogate' },
  { member: '"n":9007199254740993', refuse: true, tag: 'integer 2^53+1' },
  { member: '"n":-9007199254740993', refuse: true, tag: 'integer -(2^53+1)' },
  { member: '"n":12345678901234567890', refuse: true, tag: 'twenty-digit integer' },
  { member: '"n":9007199254740992', refuse: true, tag: 'integer 2^53' },
  { member: '"n":1e400', refuse: true, tag: 'beyond a double' },
  { member: '"n":1e300', refuse: true, tag: 'large double' },
  { member: '"n":9007199254740991', refuse: false, tag: 'largest safe integer' },
  { member: '"n":1.0', refuse: false, tag: '1.0' },
  { member: '"n":-0', refuse: false, tag: '-0' },
  { member: '"n":1E-7', refuse: false, tag: 'small exponent' },
  { member: '"n":0.1e1', refuse: false, tag: 'fraction with exponent' },
  { member: '"s":"\\ud83d\\ude00"', refuse: false, tag: 'escaped surrogate pair' },
  { member: '"s":"\\u0000\\u001F\\/"', refuse: false, tag: 'escaped controls' },
);

/** A tools/call body whose arguments are `args` spelled at random, with hazards put in. */
const body = fc
  .tuple(fc.dictionary(text, value, { maxKeys: 5 }), fc.gen(), fc.array(hazard, { maxLength: 2 }), fc.boolean())
  .map(([args, g, hazards, nested]) => {
    // Hazard keys are kept apart from the generated ones (which could collide by accident).
    const spelled = spell(Object.fromEntries(Object.entries(args).map(([k, v]) => [`_${k}`, v])), g);
    const members = hazards.map((h) => h.member);
    const extra = members.length === 0 ? '' : nested ? `"deep":{${members.join(',')}}` : members.join(',');
    const argsText =
      extra === ''
        ? spelled
        : spelled === '{}' || /^\{\s*\}$/.test(spelled)
          ? `{${extra}}`
          : `{${extra},${spelled.slice(1)}`;
    return {
      text: `{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_file","arguments":${argsText}}}`,
      hazards,
    };
  });

/** The digest's reading: the service's body checks, then the canonical form; undefined when refused. */
function ours(bodyText: string): string | undefined {
  try {
    const request = toRequest(
      checkRequest({ path: '/mcp', rawBody: Buffer.from(bodyText, 'utf8') }) as WireCheckRequest,
      { maxBodyBytes: 1 << 20, maxHeaderBytes: 65536, maxHeaders: 200 },
    );
    checkBodyIntegrity(request, 1 << 20);
    const { view } = parseMcp(request.body, request.hasBody, request.headers, 64);
    return canonicalJson(view.calls[0]!.arguments ?? {});
  } catch (err) {
    if (err instanceof RequestRejected || err instanceof CanonicalJsonError) return undefined;
    throw err;
  }
}

test('Python and Go read the arguments of every body the digest takes as the digest does, and every hazard is refused', async (t) => {
  const python = pythonReader<JcsReading>('jcs-args');
  const go = goReader<JcsReading>('jcs-args');
  const refusedTags = new Set<string>();
  let accepted = 0;
  try {
    await fc.assert(
      fc.asyncProperty(body, async ({ text: b, hazards }) => {
        const mine = ours(b);
        const mustRefuse = hazards.filter((h) => h.refuse);
        if (mine === undefined) {
          for (const h of mustRefuse) refusedTags.add(h.tag);
          return true;
        }
        accepted++;
        if (mustRefuse.length > 0) throw new Error(`digested although it holds ${mustRefuse[0]!.tag}: ${b}`);
        const [py, gr] = await Promise.all([python.read(b), go.read(b)]);
        if (!py.ok || py.canonical !== mine)
          throw new Error(`Python reads ${JSON.stringify(py)}, the digest ${mine}: ${b}`);
        if (!gr.ok || gr.canonical !== mine)
          throw new Error(`Go reads ${JSON.stringify(gr)}, the digest ${mine}: ${b}`);
        return true;
      }),
      { numRuns: 300, endOnFailure: true },
    );
  } finally {
    python.close();
    go.close();
  }
  // The generator reached both sides: bodies compared with the other readers, and hazards refused.
  t.true(accepted > 50, `only ${accepted} bodies were compared`);
  t.true(refusedTags.size >= 5, `hazards refused: ${[...refusedTags].join(', ')}`);
});

test('the readers disagree on what the digest refuses (the refusals are needed)', async (t) => {
  const python = pythonReader<JcsReading>('jcs-args');
  const go = goReader<JcsReading>('jcs-args');
  const call = (args: string) =>
    `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":${args}}}`;
  try {
    const big = call('{"n":9007199254740993}');
    t.not(
      ((await python.read(big)) as { canonical: string }).canonical,
      ((await go.read(big)) as { canonical: string }).canonical,
    );
    const lone = call('{"s":"\\ud800"}');
    t.not(JSON.stringify(await python.read(lone)), JSON.stringify(await go.read(lone)));
    t.is(ours(big), undefined);
    t.is(ours(lone), undefined);
  } finally {
    python.close();
    go.close();
  }
});
