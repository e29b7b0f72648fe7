// The benchmark's gRPC load generator (bench/loadgen, a Go program built into .build/bin by
// `scripts/install-tools.sh loadgen`) against the real service's own gRPC server: every
// request it sends is answered, each message of its list is sent in turn, and the service
// sees each distinct bearer token — the decisions it reports are the service's decisions.
import test from 'ava';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { delimited, runLoadgen } from '../bench/lib/h2load.js';
import { authorizationService } from '../src/envoy/protos.js';
import type { CheckTrace } from '../src/decision/context.js';
import { fanOut } from '../src/pipeline/observers.js';
import { buildRuntime } from '../src/pipeline/build-runtime.js';
import { admitAuthenticatedOn } from './helpers/auth-fixtures.js';
import { ROOT } from './helpers/cli.js';
import { startJwksServer, type JwksServer } from './helpers/jwks-server.js';
import { checkRequest, rpc, startTestService, type TestService } from './helpers/service.js';

const BIN = join(ROOT, '.build', 'bin', 'loadgen');
const RESOURCE = 'https://mcp.example.com/mcp/oauth';
const TOKENS = 5;
const ROUNDS = 8;

let svc: TestService;
let idp: JwksServer;
/** principal.id of every decision, and every outcome's code, as the service made them. */
const principals: string[] = [];
const codes: string[] = [];

test.before(async () => {
  idp = await startJwksServer({ discovery: 'none' });
  svc = await startTestService(
    {
      publicBaseUrl: 'https://mcp.example.com',
      oauth: { issuers: [{ issuer: idp.issuer, jwksUri: idp.jwksUri }] },
      endpoints: [
        {
          name: 'oauth',
          match: { pathPrefix: '/mcp/oauth' },
          auth: { apiKey: false, oauth: true },
          resource: RESOURCE,
        },
      ],
    },
    {
      buildRuntime: async (l, lg, m) => {
        const rt = await buildRuntime(l, lg, m);
        const seen = {
          decided({ outcome, ctx }: CheckTrace) {
            principals.push(ctx?.principal.id ?? '-');
            codes.push(outcome.kind === 'allow' ? 'allow' : outcome.code);
          },
        };
        rt.observer = fanOut([rt.observer, seen]);
        return rt;
      },
    },
  );
  admitAuthenticatedOn(svc);
});
test.after.always(async () => {
  await svc?.stop();
  await idp?.stop();
});

test('loadgen sends each message of its list in turn over several connections, and every call is answered', async (t) => {
  t.true(existsSync(BIN), `${BIN} is built by scripts/install-tools.sh loadgen`);
  const body = rpc('tools/call', { name: 'search', arguments: { q: 'x' } });
  const tokens = await Promise.all(
    Array.from({ length: TOKENS }, (_, i) => idp.sign({ sub: `user-${i}`, aud: RESOURCE, scope: 'tools:search' })),
  );
  // One more: a token for another audience, which the service refuses (401).
  const foreign = await idp.sign({ sub: 'user-x', aud: 'https://elsewhere.example.com/mcp', scope: 'tools:search' });
  const serialize = authorizationService().Check!.requestSerialize;
  const msgs = [...tokens, foreign].map((tok) =>
    serialize(checkRequest({ path: '/mcp/oauth', body, headers: { authorization: `Bearer ${tok}` } })),
  );
  const dataFile = join(svc.dir, 'requests.list');
  writeFileSync(dataFile, delimited(msgs));
  const n = msgs.length * ROUNDS;

  const r = await runLoadgen({
    bin: BIN,
    target: `127.0.0.1:${svc.grpcPort}`,
    dataFile,
    connections: 2,
    streams: 3,
    requests: n,
    // Nothing here is about speed: no deadline on the calls, and no answer counted late, whatever the machine.
    grpcTimeoutMs: 0,
    lateAfterMs: 3_600_000,
  });

  t.is(r.loadGenerator, 'loadgen');
  t.deepEqual(r.errorSamples, []);
  t.is(r.done, n);
  t.is(r.succeeded, n, 'every call ends with HTTP 200 and grpc-status 0');
  t.is(r.errored + r.timeout + r.failed, 0);
  t.deepEqual(r.grpcStatus, { '0': n });
  // The server closed no connection during the run: no GOAWAY but the one answering the
  // generator's own at the end (which the generator does not count), nothing sent again.
  t.deepEqual(r.goAways, {});
  t.is(r.resent, 0);
  t.is(r.connectionsOpened, 2);
  t.deepEqual(r.sentPerMessage, Array(msgs.length).fill(ROUNDS));
  // The CheckResponse's status.code: OK for the allows, UNAUTHENTICATED (16) for the foreign token.
  t.deepEqual(r.checkCodes, { '0': TOKENS * ROUNDS, '16': ROUNDS });

  // The service decided each of the n calls, and saw each token's subject as often as it was sent.
  t.is(principals.length, n);
  const bySubject = new Map<string, number>();
  for (const p of principals) bySubject.set(p, (bySubject.get(p) ?? 0) + 1);
  for (let i = 0; i < TOKENS; i++) t.is(bySubject.get(`${idp.issuer}#user-${i}`), ROUNDS, `user-${i}`);
  t.is(codes.filter((c) => c === 'allow').length, TOKENS * ROUNDS);
  t.is(codes.filter((c) => c !== 'allow').length, ROUNDS);
});
