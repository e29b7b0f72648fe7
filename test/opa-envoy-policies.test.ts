// OPA's own Envoy tutorial policies and the benchmark's opa-envoy-plugin policy, unchanged:
// they build with `mcp-authz policy build` (the service's capabilities) and decide as
// `opa eval` does, input for input, in the service's WASM engine.
import test from 'ava';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { canonical, opaEval, wasmEval } from './helpers/opa-differential.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const FIXTURES = join(ROOT, 'test', 'fixtures', 'opa-envoy-tutorial');
const NOW = BigInt(Date.now()) * 1_000_000n;
const NOW_S = Math.floor(Date.now() / 1000);

const b64 = (s: string) => Buffer.from(s).toString('base64url');

/** Evaluates `query` for each input in one batch, with opa eval and with the engine. */
async function decideBoth(policyFile: string, query: string, inputs: unknown[], data?: Record<string, unknown>) {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-envoy-'));
  try {
    copyFileSync(policyFile, join(dir, 'policy.rego'));
    writeFileSync(
      join(dir, 'batch.rego'),
      `package batch\n\nresults[i] := r if {\n\tsome i, x in input.inputs\n\tr := ${query} with input as x\n}\n`,
    );
    const [want, got] = await Promise.all([
      opaEval(dir, 'batch/results', { inputs }, NOW, data, ['batch.rego']),
      wasmEval(dir, 'batch/results', { inputs }, NOW, data ?? {}),
    ]);
    return { want: canonical(want), got: canonical(got) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function policyBuild(src: string, entrypoint: string): Promise<void> {
  const out = join(mkdtempSync(join(tmpdir(), 'mcp-authz-build-')), 'bundle.tar.gz');
  await run(process.execPath, [
    join(ROOT, 'scripts', 'policy-build.mjs'),
    '--src',
    src,
    '--out',
    out,
    '--entrypoint',
    entrypoint,
    '--force',
  ]);
}

async function hs256(claims: Record<string, unknown>, secret = 'secret'): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(secret));
}

async function tutorialInputs(): Promise<unknown[]> {
  const tokens = [
    await hs256({ role: 'guest', sub: b64('alice'), nbf: NOW_S - 3600, exp: NOW_S + 3600 }),
    await hs256({ role: 'admin', sub: b64('bob'), nbf: NOW_S - 3600, exp: NOW_S + 3600 }),
    await hs256({ role: 'admin', sub: b64('bob'), nbf: NOW_S - 7200, exp: NOW_S - 3600 }),
    await hs256({ role: 'admin', sub: b64('bob'), nbf: NOW_S + 3600, exp: NOW_S + 7200 }),
    await hs256({ role: 'admin', sub: b64('bob'), nbf: NOW_S - 3600, exp: NOW_S + 3600 }, 'wrong-secret'),
    // The tutorial's own sample token (guest, expires in 2035).
    'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJyb2xlIjoiZ3Vlc3QiLCJzdWIiOiJZV3hwWTJVPSIsIm5iZiI6MTUxNDg1MTEzOSwiZXhwIjoyMDYyODQwNjEwfQ.vIX2U9Mp9L5c6DS4JkqtSUrUkhxrI9zMFOr0Xs1cWPo',
    'not.a.token',
  ];
  const inputs: unknown[] = [];
  for (const t of tokens) {
    for (const [method, path, body] of [
      ['GET', '/people', undefined],
      ['GET', '/people/1', undefined],
      ['POST', '/people', { firstname: 'Charlie' }],
      ['POST', '/people', { firstname: 'Bob' }],
      ['DELETE', '/people', undefined],
    ] as const) {
      inputs.push({
        attributes: { request: { http: { method, path, headers: { authorization: `Bearer ${t}` } } } },
        ...(body ? { parsed_body: body } : {}),
      });
    }
  }
  inputs.push({ attributes: { request: { http: { method: 'GET', path: '/people', headers: {} } } } });
  return inputs;
}

test("OPA's standalone Envoy tutorial policy builds unchanged and decides as opa eval", async (t) => {
  const inputs = await tutorialInputs();
  const { want, got } = await decideBoth(join(FIXTURES, 'standalone-envoy.rego'), 'data.envoy.authz.allow', inputs);
  t.deepEqual(got, want);
  const allowed = Object.values(want as Record<string, unknown>).filter((x) => x === true).length;
  t.true(allowed > 0 && allowed < inputs.length, 'the inputs exercise both decisions');
});

test("OPA's Envoy primer policy with additional controls decides as opa eval, document for document", async (t) => {
  const inputs = await tutorialInputs();
  const { want, got } = await decideBoth(join(FIXTURES, 'primer-additional-controls.rego'), 'data.envoy.authz', inputs);
  t.deepEqual(got, want);
});

test('the tutorial policies and the benchmark peer policy pass mcp-authz policy build', async (t) => {
  for (const [file, entrypoint] of [
    ['standalone-envoy.rego', 'envoy/authz/allow'],
    ['primer-additional-controls.rego', 'envoy/authz/allow'],
  ] as const) {
    const src = mkdtempSync(join(tmpdir(), 'mcp-authz-src-'));
    copyFileSync(join(FIXTURES, file), join(src, 'policy.rego'));
    await t.notThrowsAsync(policyBuild(src, entrypoint), file);
    rmSync(src, { recursive: true, force: true });
  }
  await t.notThrowsAsync(
    policyBuild(join(ROOT, 'bench', 'opa-envoy'), 'envoy/authz/decision'),
    'bench/opa-envoy/policy.rego',
  );
});

test("the benchmark's opa-envoy-plugin policy (API keys, JWKS-verified tokens) decides as opa eval", async (t) => {
  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const other = await generateKeyPair('RS256', { extractable: true });
  const jwks = JSON.stringify({ keys: [{ ...(await exportJWK(publicKey)), kid: 'k1', alg: 'RS256' }] });
  const issuer = 'https://idp.example.com';
  const sha = (k: string) => createHash('sha256').update(k).digest('hex');
  const data = {
    bench: {
      endpoints: [
        {
          name: 'public',
          segments: ['mcp', 'public'],
          apiKey: true,
          oauth: true,
          resource: 'https://mcp.example.com/mcp/public',
        },
        {
          name: 'private',
          segments: ['mcp', 'private'],
          owner: 'alice',
          apiKey: true,
          oauth: true,
          resource: 'https://mcp.example.com/mcp/private',
        },
        { name: 'open', segments: ['mcp', 'open'], apiKey: false, oauth: false },
      ],
      keys: {
        [sha('mcp_alice')]: {
          id: 'alice-key',
          userId: 'alice',
          permissions: ['tools:search', 'tools:read_*'],
          disabled: false,
        },
        [sha('mcp_public')]: { id: 'public-key', permissions: ['*'], disabled: false },
        [sha('mcp_off')]: { id: 'off-key', permissions: ['*'], disabled: true },
      },
      oauth: { issuer, jwks },
    },
  };
  const token = (key: typeof privateKey, claims: Record<string, unknown>) =>
    new SignJWT(claims).setProtectedHeader({ alg: 'RS256', kid: 'k1' }).sign(key);
  const aud = 'https://mcp.example.com/mcp/private';
  const bearers = [
    await token(privateKey, {
      sub: 'alice',
      iss: issuer,
      aud,
      exp: NOW_S + 3600,
      scope: 'tools:search tools:read_file',
    }),
    await token(privateKey, { sub: 'bob', iss: issuer, aud, exp: NOW_S + 3600, scope: 'tools:search' }),
    await token(privateKey, { sub: 'alice', iss: issuer, aud, exp: NOW_S - 3600, scope: 'tools:search' }),
    await token(privateKey, {
      sub: 'alice',
      iss: 'https://evil.example.com',
      aud,
      exp: NOW_S + 3600,
      scope: 'tools:search',
    }),
    await token(other.privateKey, { sub: 'alice', iss: issuer, aud, exp: NOW_S + 3600, scope: 'tools:search' }),
  ];
  const call = (name: string) => ({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name } });
  const inputs: unknown[] = [];
  for (const path of [['mcp', 'private'], ['mcp', 'public'], ['mcp', 'open'], ['nope']]) {
    for (const headers of [
      {},
      { 'x-api-key': 'mcp_alice' },
      { 'x-api-key': 'mcp_public' },
      { 'x-api-key': 'mcp_off' },
      { 'x-api-key': 'mcp_wrong' },
      ...bearers.map((b) => ({ authorization: `Bearer ${b}` })),
    ]) {
      for (const body of [
        undefined,
        call('search'),
        call('read_file'),
        call('delete_file'),
        [call('search'), call('delete_file')],
      ]) {
        inputs.push({
          attributes: { request: { http: { method: 'POST', path: `/${path.join('/')}`, headers } } },
          parsed_path: path,
          ...(body ? { parsed_body: body } : {}),
        });
      }
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-bench-'));
  try {
    copyFileSync(join(ROOT, 'bench', 'opa-envoy', 'policy.rego'), join(dir, 'policy.rego'));
    writeFileSync(
      join(dir, 'batch.rego'),
      'package batch\n\nresults[i] := r if {\n\tsome i, x in input.inputs\n\tr := data.envoy.authz.decision with input as x\n}\n',
    );
    const [want, got] = await Promise.all([
      opaEval(dir, 'batch/results', { inputs }, NOW, data, ['batch.rego']),
      wasmEval(dir, 'batch/results', { inputs }, NOW, data),
    ]);
    t.deepEqual(canonical(got), canonical(want));
    const decisions = Object.values(want as Record<string, { allowed: boolean; http_status?: number }>);
    t.is(decisions.length, inputs.length);
    t.true(
      decisions.some((d) => d.allowed) &&
        decisions.some((d) => d.http_status === 401) &&
        decisions.some((d) => d.http_status === 403),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
