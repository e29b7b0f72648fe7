// The policy phase through the real gRPC server: the shipped policy's scenarios (docs/policies.md), readiness, dry-run,
// bounded memory, an opa-envoy-plugin policy, and hot reload under traffic.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHIPPED_BUNDLE, opaBinary } from '../src/config/paths.mjs';
import type { ServiceEvents } from '../src/metrics/hooks.js';
import { checkRequest, deniedBody, deniedStatus, headerValue, rpc, startTestService } from './helpers/service.js';
import { PRINCIPAL_HEADER, keyPrincipal, regoDir, tokenPrincipal, withPrincipals } from './helpers/policy.js';
import { waitFor } from './helpers/wait.js';

const principals = {
  publicKey: keyPrincipal('public-key', undefined, ['*']),
  aliceKey: keyPrincipal('alice-key', 'alice', ['tools:search', 'tools:read_*']),
  bobKey: keyPrincipal('bob-key', 'bob', ['*']),
  aliceToken: tokenPrincipal('alice', ['openid', 'tools:search']),
};
const as = (p: keyof typeof principals, extra: Record<string, string> = {}) => ({ [PRINCIPAL_HEADER]: p, ...extra });

const seedConfig = {
  publicBaseUrl: 'https://mcp.example.com',
  oauth: { issuers: [{ issuer: 'https://idp.example.com' }] },
  endpoints: [
    {
      name: 'alice-files',
      match: { pathPrefix: '/mcp/alice' },
      owner: 'alice',
      auth: { apiKey: true, oauth: true },
      resource: 'https://mcp.example.com/mcp/alice',
    },
    { name: 'shared', match: { pathPrefix: '/mcp/shared' }, auth: { apiKey: true, oauth: false } },
  ],
};

test('the shipped policy end to end: ownership, public keys, per-tool grants and the step-up challenge', async (t) => {
  const svc = await startTestService(seedConfig, { buildRuntime: withPrincipals(principals) });
  try {
    const list = rpc('tools/list');
    const pub = await svc.check(checkRequest({ path: '/mcp/alice', body: list, headers: as('publicKey') }));
    t.is(deniedStatus(pub), 403);
    t.is(pub.status?.code, 7);
    t.deepEqual(
      [deniedBody(pub).error, deniedBody(pub).error_description],
      ['access_denied', 'Public API keys cannot access private endpoints'],
    );

    const other = await svc.check(checkRequest({ path: '/mcp/alice', body: list, headers: as('bobKey') }));
    t.is(deniedStatus(other), 403);
    t.is(deniedBody(other).error_description, 'You can only access endpoints you own or public endpoints');

    const owner = await svc.check(checkRequest({ path: '/mcp/alice', body: list, headers: as('aliceKey') }));
    t.truthy(owner.ok_response);
    t.is(headerValue(owner.ok_response!.headers, 'x-mcp-user-id'), 'alice');
    t.is(headerValue(owner.ok_response!.headers, 'x-mcp-key-id'), 'alice-key');

    for (const p of ['publicKey', 'bobKey', 'aliceKey'] as const) {
      const res = await svc.check(checkRequest({ path: '/mcp/shared', body: list, headers: as(p) }));
      t.truthy(res.ok_response, `${p} on the public endpoint`);
    }

    const granted = await svc.check(
      checkRequest({ path: '/mcp/alice', body: rpc('tools/call', { name: 'read_file' }), headers: as('aliceKey') }),
    );
    t.truthy(granted.ok_response);
    const keyDenied = await svc.check(
      checkRequest({ path: '/mcp/alice', body: rpc('tools/call', { name: 'delete_file' }), headers: as('aliceKey') }),
    );
    t.is(deniedStatus(keyDenied), 403);
    t.is(deniedBody(keyDenied).error, 'access_denied');
    t.is(headerValue(keyDenied.denied_response!.headers, 'www-authenticate'), undefined);

    const tokenOk = await svc.check(
      checkRequest({ path: '/mcp/alice', body: rpc('tools/call', { name: 'search' }), headers: as('aliceToken') }),
    );
    t.truthy(tokenOk.ok_response);
    t.is(headerValue(tokenOk.ok_response!.headers, 'x-mcp-auth-method'), 'oauth');
    const tokenDenied = await svc.check(
      checkRequest({ path: '/mcp/alice', body: rpc('tools/call', { name: 'delete_file' }), headers: as('aliceToken') }),
    );
    t.is(deniedStatus(tokenDenied), 403);
    t.is(deniedBody(tokenDenied).error, 'insufficient_scope');
    t.is(
      headerValue(tokenDenied.denied_response!.headers, 'www-authenticate'),
      'Bearer error="insufficient_scope", scope="tools:delete_file", resource_metadata="https://mcp.example.com/.well-known/oauth-protected-resource/mcp/alice"',
    );
  } finally {
    await svc.stop();
  }
});

test("without publicBaseUrl the challenge's resource_metadata comes from the request scheme and host", async (t) => {
  const { publicBaseUrl: _p, ...config } = seedConfig;
  const svc = await startTestService(config, { buildRuntime: withPrincipals(principals) });
  try {
    const res = await svc.check(
      checkRequest({
        path: '/mcp/alice',
        host: 'files.example.org',
        body: rpc('tools/call', { name: 'x' }),
        headers: as('aliceToken'),
      }),
    );
    t.regex(
      headerValue(res.denied_response!.headers, 'www-authenticate')!,
      /resource_metadata="https:\/\/files\.example\.org\/\.well-known\/oauth-protected-resource\/mcp\/alice"$/,
    );
  } finally {
    await svc.stop();
  }
});

test('dry-run allows what the policy denies, reports it, and keeps real allows', async (t) => {
  let dryRunDenies = 0;
  const events: ServiceEvents = { dryRunDeny: () => void dryRunDenies++ };
  const svc = await startTestService(
    { ...seedConfig, policy: { dryRun: true } },
    { buildRuntime: withPrincipals(principals, events) },
  );
  try {
    const res = await svc.check(checkRequest({ path: '/mcp/alice', body: rpc('tools/list'), headers: as('bobKey') }));
    t.truthy(res.ok_response);
    t.is(dryRunDenies, 1);
    const real = await svc.check(
      checkRequest({ path: '/mcp/alice', body: rpc('tools/list'), headers: as('aliceKey') }),
    );
    t.truthy(real.ok_response);
    t.is(dryRunDenies, 1);
  } finally {
    await svc.stop();
  }
});

test('without a loadable policy the service is not ready and denies with 503; it becomes ready when one appears', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-ready-'));
  const bundle = join(dir, 'bundle.tar.gz');
  const svc = await startTestService(
    {
      policy: { bundle },
      endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
    },
    { dir },
  );
  try {
    const ready = await svc.http('/readyz');
    t.is(ready.status, 503);
    t.regex(ready.text, /policy: cannot read policy bundle/);
    t.is(svc.health.current, 'NOT_SERVING');
    const res = await svc.check(checkRequest({ path: '/mcp/open', body: rpc('ping') }));
    t.is(deniedStatus(res), 503);
    t.is(deniedBody(res).error, 'policy_unavailable');

    copyFileSync(SHIPPED_BUNDLE, `${bundle}.tmp`);
    renameSync(`${bundle}.tmp`, bundle);
    await waitFor(
      '/readyz 200 after the bundle appears',
      async () => (await svc.http('/readyz')).status === 200,
      15_000,
      0,
    );
    t.is(svc.health.current, 'SERVING');
    t.truthy((await svc.check(checkRequest({ path: '/mcp/open', body: rpc('ping') }))).ok_response);
  } finally {
    await svc.stop();
  }
});

test('a policy that exceeds its memory bound is a 503 deny and the service keeps serving', async (t) => {
  const rego = regoDir({
    'p.rego':
      'package mcp.authz\ndecision := {"allow": count(numbers.range(1, to_number(input.request.query.n[0]))) > 0}\n',
  });
  const svc = await startTestService({
    policy: { rego, maxMemoryPages: 32 },
    endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
  });
  try {
    const blown = await svc.check(checkRequest({ method: 'GET', path: '/mcp/open?n=50000000' }));
    t.is(deniedStatus(blown), 503);
    t.is(deniedBody(blown).error, 'policy_error');
    t.is(blown.status?.code, 14);
    const fine = await svc.check(checkRequest({ method: 'GET', path: '/mcp/open?n=3' }));
    t.truthy(fine.ok_response);
    t.is((await svc.http('/readyz')).status, 200);
  } finally {
    await svc.stop();
  }
});

test('an opa-envoy-plugin policy runs unchanged on the opa-envoy-plugin input and decision shapes', async (t) => {
  const svc = await startTestService({
    policy: { rego: join(import.meta.dirname, 'fixtures', 'envoy-plugin'), entrypoint: 'envoy/authz/result' },
    endpoints: [{ name: 'plugin', match: { pathPrefix: '/mcp/plugin' }, auth: { apiKey: false, oauth: false } }],
  });
  try {
    const ok = await svc.check(
      checkRequest({ path: '/mcp/plugin', body: rpc('tools/list'), headers: { 'x-internal': '1' } }),
    );
    t.truthy(ok.ok_response, ok.denied_response?.body);
    t.is(headerValue(ok.ok_response!.headers, 'x-plugin-user'), 'from-policy');
    t.true(ok.ok_response!.headers_to_remove!.includes('x-internal'));
    t.is(headerValue(ok.ok_response!.response_headers_to_add, 'x-plugin-seen'), 'yes');
    // The policy's dynamic metadata reaches Envoy with its value, beside the decision id.
    const fields = (ok.dynamic_metadata as { fields: Record<string, Record<string, unknown>> }).fields;
    t.is(fields.plugin?.boolValue, true);
    t.regex(String(fields.decision_id?.stringValue), /^[0-9a-f-]{36}$/);

    const get = await svc.check(checkRequest({ method: 'GET', path: '/mcp/plugin/sse?mode=read' }));
    t.truthy(get.ok_response, get.denied_response?.body);

    const denied = await svc.check(checkRequest({ path: '/mcp/plugin', body: rpc('tools/call', { name: 'x' }) }));
    t.is(deniedStatus(denied), 451);
    t.is(denied.denied_response?.body, 'blocked by plugin policy');
    t.is(headerValue(denied.denied_response!.headers, 'x-plugin-reason'), 'no');
  } finally {
    await svc.stop();
  }
});

function buildBundle(rego: string, out: string): void {
  const src = regoDir({ 'p.rego': rego });
  execFileSync(opaBinary(), ['build', '-t', 'wasm', '-e', 'mcp/authz/decision', '-o', out, '.'], { cwd: src });
}

test('reload under traffic: two changes, one broken, and not one failed or wrongly decided Check', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-reload-'));
  const bundle = join(dir, 'bundle.tar.gz');
  const v1 = join(dir, 'v1.tar.gz');
  const v2 = join(dir, 'v2.tar.gz');
  const policy = (tools: string) =>
    `package mcp.authz\ndefault decision := {"allow": false, "status": 403, "error": "access_denied"}\ndecision := {"allow": true} if { some c in input.mcp.calls; c.name in {${tools}} }\n`;
  buildBundle(policy('"a"'), v1);
  buildBundle(policy('"a", "b"'), v2);
  copyFileSync(v1, bundle);
  const reloads: string[] = [];
  const events: ServiceEvents = { policyReload: (r) => void reloads.push(r) };
  const svc = await startTestService(
    {
      policy: { bundle },
      endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
    },
    { dir, buildRuntime: withPrincipals({}, events) },
  );
  const replace = (from: string | Buffer) => {
    const tmp = `${bundle}.${Date.now()}.tmp`;
    if (typeof from === 'string') copyFileSync(from, tmp);
    else writeFileSync(tmp, from);
    renameSync(tmp, bundle);
  };

  let running = true;
  let sent = 0;
  const wrong: string[] = [];
  let bAllowed = false;
  const worker = async () => {
    while (running) {
      const name = sent++ % 2 === 0 ? 'a' : 'b';
      try {
        const res = await svc.check(checkRequest({ path: '/mcp/open', body: rpc('tools/call', { name }) }));
        if (name === 'a' && !res.ok_response) wrong.push(`a denied: ${res.denied_response?.body}`);
        if (name === 'b') {
          if (res.ok_response) bAllowed = true;
          else if (bAllowed) wrong.push('b denied after v2 was in use');
          else if (deniedStatus(res) !== 403) wrong.push(`b: ${res.denied_response?.body}`);
        }
      } catch (err) {
        wrong.push(`gRPC error: ${(err as Error).message}`);
      }
    }
  };
  try {
    const workers = [worker(), worker(), worker(), worker()];
    await waitFor('traffic to start', () => sent > 50, 15_000, 0);
    replace(Buffer.from('this is not a bundle'));
    await waitFor('the broken bundle to be refused', () => reloads.includes('failure'), 15_000, 0);
    const afterBroken = sent;
    await waitFor('traffic on the kept policy', () => sent > afterBroken + 50, 15_000, 0);
    t.is((await svc.http('/readyz')).status, 200, 'a refused reload keeps the service ready');
    replace(v2);
    await waitFor('v2 to take over', () => bAllowed, 15_000, 0);
    const afterV2 = sent;
    await waitFor('traffic on v2', () => sent > afterV2 + 50, 15_000, 0);
    running = false;
    await Promise.all(workers);
    t.deepEqual(wrong, []);
    t.true(sent > 150);
    t.deepEqual(reloads.filter((r) => r === 'failure').length, 1);
    t.is(reloads.at(-1), 'success');
  } finally {
    running = false;
    await svc.stop();
  }
});

test('a changed .rego folder is recompiled and swapped in; a compile error keeps the old policy', async (t) => {
  const rego = regoDir({ 'p.rego': 'package mcp.authz\ndecision := {"allow": false, "status": 403, "error": "v1"}\n' });
  const results: string[] = [];
  const svc = await startTestService(
    {
      policy: { rego },
      endpoints: [{ name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } }],
    },
    { buildRuntime: withPrincipals({}, { policyReload: (r) => void results.push(r) }) },
  );
  const code = async () => deniedBody(await svc.check(checkRequest({ path: '/mcp/open', body: rpc('ping') }))).error;
  try {
    t.is(await code(), 'v1');
    writeFileSync(join(rego, 'p.rego'), 'package mcp.authz\ndecision := {\n');
    await waitFor('the compile error to be reported', () => results.includes('failure'), 15_000, 0);
    t.is(await code(), 'v1');
    writeFileSync(
      join(rego, 'p.rego'),
      'package mcp.authz\ndecision := {"allow": false, "status": 403, "error": "v2"}\n',
    );
    await waitFor('v2 to take over', async () => (await code()) === 'v2', 30_000, 0);
    t.pass();
  } finally {
    await svc.stop();
  }
});
