// The approvals phase through the real pipeline (policy bundle, runtime, store): the answer
// each protocol revision reads, grants used once / N times / within their window, expiry on a
// fake clock, receipts that verify, what cannot be bound, dry-run, an unconfigured service,
// and Redis — shared by replicas, and failing closed when it is down.
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { importJWK, jwtVerify } from 'jose';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { stringify } from 'yaml';
import { explain } from '../src/cli/check-command.js';
import type { ApprovalService } from '../src/approvals/approval-service.js';
import { RECEIPT_TYPE, ReceiptSigner } from '../src/approvals/receipt.js';
import { loadConfigFile } from '../src/config/load.js';
import type { Deny, Outcome } from '../src/contracts/outcome.js';
import { responseBody } from '../src/contracts/outcome.js';
import { toRequest, type DecodeExtras, type WireCheckRequest } from '../src/envoy/to-request.js';
import { silentLogger } from '../src/log/logger.js';
import type { ApprovalEvent } from '../src/metrics/hooks.js';
import { createMetricsRegistry } from '../src/metrics/registry.js';
import { buildRuntime } from '../src/pipeline/build-runtime.js';
import { runCheck } from '../src/pipeline/pipeline.js';
import type { Runtime } from '../src/pipeline/runtime.js';
import { keysFile, mintKey } from './e2e/api-keys.js';
import { startRedis, startRedisCluster, type TestRedis } from './helpers/redis.js';
import { waitFor } from './helpers/wait.js';
import { checkRequest } from './helpers/service.js';

const alice = mintKey({ id: 'alice-laptop', name: 'Alice', userId: 'alice', role: 'user', permissions: ['*'] });
const PAGE = 'https://approvals.example.com';

interface Rig {
  rt: Runtime;
  clock: { now: number };
  events: ApprovalEvent[];
  approvals: ApprovalService;
}

async function rig(
  opts: { rule?: Record<string, unknown>; approvals?: Record<string, unknown> | false; dryRun?: boolean } = {},
): Promise<Rig> {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-approvals-'));
  writeFileSync(join(dir, 'keys.yaml'), keysFile([alice]));
  writeFileSync(
    join(dir, 'receipt.pem'),
    generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  const config = {
    apiKeys: { file: 'keys.yaml' },
    ...(opts.dryRun ? { policy: { dryRun: true } } : {}),
    ...(opts.approvals === false
      ? {}
      : {
          approvals: {
            publicUrl: PAGE,
            receiptKeyFile: 'receipt.pem',
            pendingSeconds: 300,
            grantSeconds: 600,
            oidc: { issuer: 'https://idp.example.com', clientId: 'approvals' },
            ...opts.approvals,
          },
        }),
    endpoints: [
      {
        name: 'files',
        match: { pathPrefix: '/mcp' },
        auth: { apiKey: true, oauth: false },
        data: {
          approvals: [
            { name: 'deletes', tools: ['delete_*'], group: 'ops', reason: 'Deletes need a person.', ...opts.rule },
          ],
        },
      },
    ],
  };
  writeFileSync(join(dir, 'config.yaml'), stringify(config));
  const clock = { now: Date.parse('2026-12-07T12:00:00Z') };
  const events: ApprovalEvent[] = [];
  const rt = await buildRuntime(loadConfigFile(join(dir, 'config.yaml'), {}), silentLogger(), createMetricsRegistry(), {
    watch: false,
    tracing: false,
    upstreamCredentials: false,
    now: () => clock.now,
    events: { approval: (e) => events.push(e) },
  });
  return { rt, clock, events, approvals: rt.approvals as ApprovalService };
}

const call = (args: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    jsonrpc: '2.0',
    id: 9,
    method: 'tools/call',
    params: { name: 'delete_file', arguments: args },
    ...extra,
  });

async function check(
  rt: Runtime,
  body: string,
  headers: Record<string, string> = {},
  extras?: DecodeExtras,
): Promise<Outcome> {
  const wire = checkRequest({
    path: '/mcp',
    body,
    headers: { 'x-api-key': alice.key, 'content-type': 'application/json', ...headers },
  }) as WireCheckRequest;
  return (await runCheck(rt, (m: WireCheckRequest, l) => toRequest(m, l, extras), wire)).outcome;
}

const approvalIdOf = (o: Outcome) => ((o as Deny).extra as { approval_id: string }).approval_id;

async function grant(r: Rig, id: string, uses = 1, windowSeconds = 600): Promise<void> {
  const ok = await r.approvals.store.decide(
    id,
    {
      state: 'granted',
      approver: 'carol@example.com',
      decidedAt: r.clock.now,
      validUntil: r.clock.now + windowSeconds * 1000,
    },
    uses,
    windowSeconds * 1000,
  );
  if (!ok) throw new Error('not pending');
}

test('2025-11-25: a held call is answered 200 with the JSON-RPC error -32042 and the page URL; nothing is allowed', async (t) => {
  const r = await rig();
  try {
    const o = await check(r.rt, call({ path: '/a' }), { 'mcp-protocol-version': '2025-11-25' });
    t.false(o.allow);
    t.is((o as Deny).code, 'approval_required');
    t.is(o.status, 200);
    t.not((o as Deny).grpc, 0, 'a non-OK gRPC code: Envoy sends the answer instead of forwarding');
    const body = JSON.parse(responseBody(o as Deny));
    const id = approvalIdOf(o);
    t.deepEqual(body, {
      jsonrpc: '2.0',
      id: 9,
      error: {
        code: -32042,
        message: 'Approval required: Deletes need a person.',
        data: {
          elicitations: [
            {
              mode: 'url',
              elicitationId: id,
              url: `${PAGE}/approvals/${id}`,
              message: 'Approval required: Deletes need a person.',
            },
          ],
        },
      },
    });
    t.deepEqual(r.events, ['requested']);
  } finally {
    await r.rt.close();
  }
});

test("Envoy's HTTP authorization service, which forwards on any 200, refuses the held call with 403 and the same message", async (t) => {
  const r = await rig();
  try {
    const o = await check(
      r.rt,
      call({ path: '/a' }),
      { 'mcp-protocol-version': '2025-11-25' },
      {
        answerLimits: { removesQueryParams: false, answersDirectly: false },
      },
    );
    t.false(o.allow);
    t.is((o as Deny).code, 'approval_required');
    t.is(o.status, 403);
    t.is(JSON.parse(responseBody(o as Deny)).error.code, -32042);
  } finally {
    await r.rt.close();
  }
});

test('2026-07-28: the held call is answered with an input_required result carrying the URL elicitation and the request state', async (t) => {
  const r = await rig();
  try {
    const meta = {
      _meta: {
        'io.modelcontextprotocol/protocolVersion': '2026-07-28',
        'io.modelcontextprotocol/clientCapabilities': { elicitation: { url: {} } },
      },
    };
    const call26 = (extra = '') =>
      call({ path: '/a' }).replace('"arguments"', `${extra}"_meta":${JSON.stringify(meta._meta)},"arguments"`);
    const o = await check(r.rt, call26(), {
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'delete_file',
    });
    t.is((o as Deny).code, 'approval_required', JSON.stringify(o));
    const id = approvalIdOf(o);
    t.deepEqual(JSON.parse(responseBody(o as Deny)), {
      jsonrpc: '2.0',
      id: 9,
      result: {
        resultType: 'input_required',
        inputRequests: {
          [id]: {
            method: 'elicitation/create',
            params: {
              mode: 'url',
              message: 'Approval required: Deletes need a person.',
              url: `${PAGE}/approvals/${id}`,
            },
          },
        },
        requestState: id,
      },
    });
    // The retry carries the request state and the client's answer: the same call, the same approval.
    const retry = call26(`"requestState":"${id}","inputResponses":{"${id}":{"action":"accept"}},`);
    const again = await check(r.rt, retry, {
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'delete_file',
    });
    t.is(approvalIdOf(again), id);
  } finally {
    await r.rt.close();
  }
});

test('2026-07-28 from a client that did not declare URL elicitation: the JSON-RPC error naming the URL', async (t) => {
  const r = await rig();
  try {
    const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28' };
    const body = call({ path: '/a' }).replace('"arguments"', `"_meta":${JSON.stringify(meta)},"arguments"`);
    const o = await check(r.rt, body, {
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'delete_file',
    });
    t.is((o as Deny).code, 'approval_required', JSON.stringify(o));
    const answer = JSON.parse(responseBody(o as Deny));
    t.is(answer.result, undefined, 'no input_required result the client did not ask for');
    t.is(answer.error.code, -32001);
    t.true(answer.error.message.includes(`${PAGE}/approvals/${approvalIdOf(o)}`));
  } finally {
    await r.rt.close();
  }
});

test('before 2025-11-25 the answer is a JSON-RPC error whose message names the URL', async (t) => {
  const r = await rig();
  try {
    const o = await check(r.rt, call({ path: '/a' }), { 'mcp-protocol-version': '2025-06-18' });
    const body = JSON.parse(responseBody(o as Deny));
    t.is(body.error.code, -32001);
    t.true(body.error.message.includes(`${PAGE}/approvals/${approvalIdOf(o)}`));
  } finally {
    await r.rt.close();
  }
});

for (const [type, alg] of [
  ['ed25519', 'EdDSA'],
  ['p256', 'ES256'],
] as const) {
  test(`a ${alg} receipt verifies with jose against the published key, every claim as signed`, async (t) => {
    const key =
      type === 'ed25519'
        ? generateKeyPairSync('ed25519').privateKey
        : generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
    const signer = await ReceiptSigner.fromPem(key.export({ type: 'pkcs8', format: 'pem' }).toString(), PAGE);
    const now = Date.UTC(2026, 11, 7, 12);
    const receipt = signer.sign(
      {
        approvalId: 'a'.repeat(22),
        digest: 'd'.repeat(64),
        approver: 'carol@example.com',
        approvedAt: now - 5000,
        rule: 'deletes',
        principal: 'api_key:alice-laptop',
        endpoint: 'files',
        tool: 'delete_"file"',
        policyRevision: 'sha256-1',
        decisionId: 'dec-1',
      },
      now,
    );
    const { payload, protectedHeader } = await jwtVerify(receipt, await importJWK(signer.jwks().keys[0]!, alg), {
      issuer: PAGE,
      subject: 'api_key:alice-laptop',
      currentDate: new Date(now),
      algorithms: [alg],
    });
    t.deepEqual(protectedHeader, { alg, kid: signer.kid, typ: RECEIPT_TYPE });
    t.deepEqual(payload, {
      digest: 'd'.repeat(64),
      approver: 'carol@example.com',
      approved_at: Math.floor((now - 5000) / 1000),
      rule: 'deletes',
      endpoint: 'files',
      tool: 'delete_"file"',
      policy_revision: 'sha256-1',
      decision_id: 'dec-1',
      iss: PAGE,
      sub: 'api_key:alice-laptop',
      jti: 'a'.repeat(22),
      iat: Math.floor(now / 1000),
    });
    // One flipped bit in the payload and it no longer verifies.
    const [h, p, sig] = receipt.split('.');
    const forged = `${h}.${Buffer.from(Buffer.from(p!, 'base64url').toString().replace('carol', 'mallo')).toString('base64url')}.${sig}`;
    await t.throwsAsync(jwtVerify(forged, await importJWK(signer.jwks().keys[0]!, alg)));
  });
}

test('a grant lets the same call through once, with a receipt that verifies; then it is held again', async (t) => {
  const r = await rig();
  try {
    const id = approvalIdOf(await check(r.rt, call({ path: '/a', n: 1 })));
    await grant(r, id);
    // The same arguments in another spelling are the same call.
    const o = await check(
      r.rt,
      '{"params":{"arguments":{"n":1.0,"path":"\\u002fa"},"name":"delete_file"},"method":"tools/call","id":10,"jsonrpc":"2.0"}',
    );
    t.true(o.allow);
    const meta = (
      o as { dynamicMetadata?: { approval?: { id: string; receipt: string; approver: string; digest: string } } }
    ).dynamicMetadata?.approval;
    t.is(meta?.id, id);
    const jwk = r.approvals.signer.publicJwk;
    const { payload, protectedHeader } = await jwtVerify(meta!.receipt, await importJWK(jwk, 'EdDSA'), {
      issuer: PAGE,
      currentDate: new Date(r.clock.now),
    });
    t.is(protectedHeader.typ, RECEIPT_TYPE);
    t.like(payload, {
      jti: id,
      sub: 'api_key:alice-laptop',
      approver: 'carol@example.com',
      rule: 'deletes',
      digest: meta!.digest,
      tool: 'delete_file',
      endpoint: 'files',
    });
    const again = await check(r.rt, call({ path: '/a', n: 1 }));
    t.is((again as Deny).code, 'approval_required');
    t.not(approvalIdOf(again), id);
    t.deepEqual(r.events, ['requested', 'used', 'requested']);
  } finally {
    await r.rt.close();
  }
});

test("an approver's grant is signed once, when decided: each call it lets through carries that receipt", async (t) => {
  const r = await rig({ rule: { uses: 2 } });
  try {
    const id = approvalIdOf(await check(r.rt, call({ path: '/r' })));
    const decidedAt = r.clock.now;
    t.true(await r.approvals.decide((await r.approvals.store.byId(id))!, true, 'dana@example.com', decidedAt));
    const stored = await r.approvals.store.byId(id);
    t.is(stored?.state, 'granted');
    t.is(typeof stored?.decision?.receipt, 'string');
    r.clock.now += 5000;
    const receipts: string[] = [];
    for (let i = 0; i < 2; i++) {
      const o = await check(r.rt, call({ path: '/r' }));
      t.true(o.allow);
      receipts.push((o as { dynamicMetadata?: { approval?: { receipt: string } } }).dynamicMetadata!.approval!.receipt);
    }
    t.is(receipts[0], stored!.decision!.receipt);
    t.is(receipts[1], stored!.decision!.receipt);
    const { payload } = await jwtVerify(receipts[0]!, await importJWK(r.approvals.signer.publicJwk, 'EdDSA'), {
      issuer: PAGE,
      currentDate: new Date(r.clock.now),
    });
    t.like(payload, {
      jti: id,
      approver: 'dana@example.com',
      approved_at: Math.floor(decidedAt / 1000),
      rule: 'deletes',
    });
    t.false('decision_id' in payload);
    // A second decision on the same approval changes nothing.
    t.false(await r.approvals.decide(stored!, false, 'erin@example.com', r.clock.now));
  } finally {
    await r.rt.close();
  }
});

test('a rule with uses: 2 lets the call through twice; a grant past its window is held again', async (t) => {
  const r = await rig({ rule: { uses: 2, windowSeconds: 60 } });
  try {
    const id = approvalIdOf(await check(r.rt, call({ path: '/b' })));
    await grant(r, id, 2, 60);
    t.true((await check(r.rt, call({ path: '/b' }))).allow);
    t.true((await check(r.rt, call({ path: '/b' }))).allow);
    t.is(((await check(r.rt, call({ path: '/b' }))) as Deny).code, 'approval_required');

    const id2 = approvalIdOf(await check(r.rt, call({ path: '/c' })));
    await grant(r, id2, 2, 60);
    r.clock.now += 61_000;
    const late = await check(r.rt, call({ path: '/c' }));
    t.is((late as Deny).code, 'approval_required');
    t.not(approvalIdOf(late), id2);
  } finally {
    await r.rt.close();
  }
});

test('in the process, a granted call takes its use at once, without waiting on the store; a used-up grant asks anew', async (t) => {
  const r = await rig({ rule: { uses: 2 } });
  try {
    const { store } = r.approvals;
    let waited = 0;
    const byDigest = store.byDigest.bind(store);
    store.byDigest = (digest) => {
      waited++;
      return byDigest(digest);
    };
    const id = approvalIdOf(await check(r.rt, call({ path: '/i' })));
    t.is(waited, 1, 'the first call is looked up, then asks');
    await grant(r, id, 2);
    t.true((await check(r.rt, call({ path: '/i' }))).allow);
    t.true((await check(r.rt, call({ path: '/i' }))).allow);
    t.is(waited, 1, 'each use of the grant answered from the record in the process');
    t.is((await store.byId(id))?.usesLeft, 0);
    const again = await check(r.rt, call({ path: '/i' }));
    t.is((again as Deny).code, 'approval_required');
    t.not(approvalIdOf(again), id);
    t.is(waited, 2);
    t.deepEqual(r.events, ['requested', 'used', 'used', 'requested']);
  } finally {
    await r.rt.close();
  }
});

test('a pending approval expires: the retried call asks anew, and the expiry is counted', async (t) => {
  const r = await rig();
  try {
    const first = approvalIdOf(await check(r.rt, call({ path: '/d' })));
    r.clock.now += 299_000;
    t.is(approvalIdOf(await check(r.rt, call({ path: '/d' }))), first, 'still pending: the same approval');
    r.clock.now += 2_000;
    const second = approvalIdOf(await check(r.rt, call({ path: '/d' })));
    t.not(second, first);
    t.deepEqual(r.events, ['requested', 'expired', 'requested']);
  } finally {
    await r.rt.close();
  }
});

test('a rejection denies the same call with approval_rejected (403)', async (t) => {
  const r = await rig();
  try {
    const id = approvalIdOf(await check(r.rt, call({ path: '/e' })));
    await r.approvals.store.decide(
      id,
      { state: 'rejected', approver: 'carol@example.com', decidedAt: r.clock.now, validUntil: r.clock.now + 300_000 },
      1,
      300_000,
    );
    const o = (await check(r.rt, call({ path: '/e' }))) as Deny;
    t.is(o.code, 'approval_rejected');
    t.is(o.status, 403);
    t.true(o.description.includes('carol@example.com'));
  } finally {
    await r.rt.close();
  }
});

test('what cannot be bound to one digest is refused: a batch, an integer beyond 2^53 − 1', async (t) => {
  const r = await rig();
  try {
    const batch = `[${call({ path: '/f' })},${call({ path: '/g' }).replace('"id":9', '"id":10')}]`;
    t.is(((await check(r.rt, batch)) as Deny).code, 'approval_not_bindable');
    const big = call({ path: '/f' }).replace('"path":"/f"', '"path":"/f","n":9007199254740993');
    const o = (await check(r.rt, big)) as Deny;
    t.is(o.code, 'approval_not_bindable');
    t.is(o.status, 400);
    t.deepEqual(r.events, []);
  } finally {
    await r.rt.close();
  }
});

test('without approvals configured, a call the policy holds is denied (approval_unavailable), never allowed', async (t) => {
  const r = await rig({ approvals: false });
  try {
    const o = (await check(r.rt, call({ path: '/h' }))) as Deny;
    t.is(o.code, 'approval_unavailable');
    t.is(o.status, 503);
  } finally {
    await r.rt.close();
  }
});

test('dry-run lets a held call through without asking anyone', async (t) => {
  const r = await rig({ dryRun: true });
  try {
    const o = await check(r.rt, call({ path: '/i' }));
    t.true(o.allow);
    t.deepEqual(r.events, []);
  } finally {
    await r.rt.close();
  }
});

let redis: TestRedis | undefined;
test.after.always(async () => redis?.stop());

test.serial(
  'with Redis, replicas share approvals (a grant is used once across them), and Redis down fails closed',
  async (t) => {
    redis = await startRedis();
    const shared = { redis: { url: `redis://127.0.0.1:${redis.port}`, keyPrefix: `t${Date.now()}` } };
    const a = await rig({ approvals: shared });
    const b = await rig({ approvals: shared });
    try {
      // Wait for both connections (the first command would otherwise meet no connection yet).
      const ready = async (r: Rig) => {
        for (let i = 0; i < 200; i++) {
          const o = await check(r.rt, call({ path: '/warm' }));
          if ((o as Deny).code === 'approval_required') return;
          await new Promise((res) => setTimeout(res, 25));
        }
        throw new Error('Redis never answered');
      };
      await ready(a);
      await ready(b);
      const id = approvalIdOf(await check(a.rt, call({ path: '/j' })));
      t.is(
        approvalIdOf(await check(b.rt, call({ path: '/j' }))),
        id,
        'the other replica sees the same pending approval',
      );
      await grant(a, id);
      const [x, y] = await Promise.all([check(a.rt, call({ path: '/j' })), check(b.rt, call({ path: '/j' }))]);
      t.is([x, y].filter((o) => o.allow).length, 1, 'one use, whichever replica asks');

      await redis.stop();
      const down = (await check(a.rt, call({ path: '/k' }))) as Deny;
      t.is(down.code, 'approval_unavailable');
      t.is(down.status, 503);
    } finally {
      await Promise.all([a.rt.close(), b.rt.close()]);
    }
  },
);

test.serial(
  'on a Redis Cluster, replicas share approvals: asked on one, granted, each use taken once across both',
  async (t) => {
    const cluster = await startRedisCluster(3);
    t.teardown(() => cluster.stop());
    const shared = { redis: { url: cluster.url, cluster: true, keyPrefix: `c${Date.now()}` } };
    const a = await rig({ approvals: shared, rule: { uses: 2 } });
    const b = await rig({ approvals: shared, rule: { uses: 2 } });
    t.teardown(() => Promise.all([a.rt.close(), b.rt.close()]).then(() => undefined));
    for (const r of [a, b])
      await waitFor(
        'the cluster to answer',
        async () => ((await check(r.rt, call({ path: '/warm' }))) as Deny).code === 'approval_required',
      );
    // Four calls: each approval's records share the slot of its (random) id, on any master.
    for (const path of ['/c1', '/c2', '/c3', '/c4']) {
      const id = approvalIdOf(await check(a.rt, call({ path })));
      t.is(approvalIdOf(await check(b.rt, call({ path }))), id, 'the other replica sees the same pending approval');
      await grant(b, id, 2);
      const outcomes = await Promise.all(
        Array.from({ length: 6 }, (_, i) => check((i % 2 ? a : b).rt, call({ path }))),
      );
      t.is(outcomes.filter((o) => o.allow).length, 2, `${path}: two uses, whichever replica asks`);
    }
  },
);

test('the webhook gets one JSON notice per held call, Slack-compatible, without the arguments', async (t) => {
  const notices: Record<string, any>[] = [];
  const hook = createServer((req, res) => {
    let body = '';
    req.on('data', (d) => (body += d));
    req.on('end', () => {
      notices.push({ contentType: req.headers['content-type'], ...JSON.parse(body) });
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
  const r = await rig({
    approvals: { webhook: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook` } },
  });
  try {
    const id = approvalIdOf(await check(r.rt, call({ path: '/w', token: 'secret-value' })));
    await check(r.rt, call({ path: '/w', token: 'secret-value' }));
    for (let i = 0; i < 400 && notices.length === 0; i++) await new Promise((res) => setTimeout(res, 25));
    t.is(notices.length, 1, 'a retry of a pending call is not notified again');
    const [n] = notices;
    t.is(n!.contentType, 'application/json');
    t.true(n!.text.includes('alice') && n!.text.includes('delete_file') && n!.text.includes(`${PAGE}/approvals/${id}`));
    t.like(n!.approval, {
      id,
      url: `${PAGE}/approvals/${id}`,
      endpoint: 'files',
      tool: 'delete_file',
      group: 'ops',
      rule: 'deletes',
    });
    t.false(JSON.stringify(n).includes('secret-value'));
  } finally {
    await r.rt.close();
    hook.close();
  }
});

test('mcp-authz check shows the held call: approval_required, the answer and what the policy asked for', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-approvals-check-'));
  writeFileSync(join(dir, 'keys.yaml'), keysFile([alice]));
  writeFileSync(
    join(dir, 'receipt.pem'),
    generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  writeFileSync(
    join(dir, 'config.yaml'),
    stringify({
      apiKeys: { file: 'keys.yaml' },
      approvals: {
        publicUrl: PAGE,
        receiptKeyFile: 'receipt.pem',
        oidc: { issuer: 'https://idp.example.com', clientId: 'a' },
      },
      endpoints: [
        {
          name: 'files',
          match: { pathPrefix: '/mcp' },
          data: {
            approvals: [{ name: 'deletes', tools: ['delete_*'], group: 'ops', reason: 'Deletes need a person.' }],
          },
        },
      ],
    }),
  );
  const out = (await explain(loadConfigFile(join(dir, 'config.yaml'), {}), {
    method: 'POST',
    path: '/mcp',
    host: 'mcp.example.com',
    headers: [
      ['x-api-key', alice.key],
      ['content-type', 'application/json'],
      ['mcp-protocol-version', '2025-11-25'],
    ],
    body: call({ path: '/x' }),
  })) as Record<string, any>;
  t.is(out.reason, 'approval_required');
  t.is(out.status, 200);
  t.is(out.body.error.code, -32042);
  t.deepEqual(out.policy.approval, {
    reason: 'Deletes need a person.',
    group: 'ops',
    rule: 'deletes',
    uses: 1,
    window_seconds: null,
  });
});
