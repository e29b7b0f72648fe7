// opa-envoy-plugin's side of the comparison: the data its policy reads (the same keys,
// endpoints and JWKS mcp-authz gets), and an `opa eval` of that policy on the input the
// plugin builds, to prove the policy decides like mcp-authz even where the plugin can't run.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Prepared } from './mcp-authz.js';
import { out } from './paths.js';
import { run } from './processes.js';
import { BENCH_USER, OAUTH_RESOURCE, PATHS, type Scenario } from './scenarios.js';
import type { Verdict } from './verify.js';

export function opaEnvoyData(p: Prepared): unknown {
  const keys: Record<string, unknown> = {};
  for (const k of p.keyEntries) keys[k.sha256] = { id: k.id, userId: k.userId ?? null, permissions: k.permissions, disabled: false };
  const seg = (path: string) => path.split('/').filter(Boolean);
  return {
    bench: {
      keys,
      endpoints: [
        { name: 'open', segments: seg(PATHS.open), apiKey: false, oauth: false },
        { name: 'files', segments: seg(PATHS.apiKey), owner: BENCH_USER, apiKey: true, oauth: false },
        { name: 'oauth', segments: seg(PATHS.oauth), owner: BENCH_USER, apiKey: false, oauth: true, resource: OAUTH_RESOURCE },
      ],
      oauth: { issuer: p.issuer.issuer, jwks: JSON.stringify(p.issuer.jwks) },
    },
  };
}

const camel = (k: string) => k.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());

/** protojson's field names, as the plugin hands `attributes` to the policy; header names untouched. */
function toProtoJsonNames(v: unknown, parentKey = ''): unknown {
  if (Array.isArray(v)) return v.map((x) => toProtoJsonNames(x));
  if (v && typeof v === 'object') {
    if (parentKey === 'headers') return v;
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [camel(k), toProtoJsonNames(x, k)]));
  }
  return v;
}

/** The input opa-envoy-plugin builds for one CheckRequest (envoyauth/request.go). */
export function pluginInput(req: Record<string, any>): unknown {
  const http = req.attributes.request.http;
  const [path, query = ''] = String(http.path).split('?', 2);
  const parsedQuery: Record<string, string[]> = {};
  for (const [k, v] of new URLSearchParams(query)) (parsedQuery[k] ??= []).push(v);
  const json = String(http.headers?.['content-type'] ?? '').startsWith('application/json') && http.body;
  return {
    attributes: toProtoJsonNames(req.attributes),
    parsed_path: path!.split('/').filter(Boolean),
    parsed_query: parsedQuery,
    parsed_body: json ? JSON.parse(http.body) : null,
    truncated_body: false,
    version: { encoding: 'protojson', ext_authz: 'v3' },
  };
}

export async function evalOpaEnvoyPolicy(opa: string, policy: string, dataFile: string, s: Scenario): Promise<Verdict> {
  const inputFile = join(out, 'opa-envoy', `input-${s.name}.json`);
  writeFileSync(inputFile, JSON.stringify(pluginInput(s.requests[0] as Record<string, any>)));
  const r = await run(opa, ['eval', '--format', 'json', '-d', policy, '-d', dataFile, '-i', inputFile, 'data.envoy.authz.decision'], { timeoutMs: 60_000 });
  if (r.code !== 0) return { ok: false, expected: s.expect, failure: `opa eval: ${(r.stderr || r.stdout).trim().slice(0, 500)}` };
  const d = JSON.parse(r.stdout)?.result?.[0]?.expressions?.[0]?.value as { allowed?: boolean; http_status?: number; body?: string } | undefined;
  if (!d) return { ok: false, expected: s.expect, failure: 'the policy left the decision undefined' };
  let error: string | undefined;
  try {
    error = JSON.parse(d.body ?? '').error;
  } catch {
    /* no body */
  }
  const observed = { allow: d.allowed === true, grpcStatus: d.allowed ? 0 : 7, status: d.allowed ? 200 : (d.http_status ?? 403), ...(error ? { error } : {}) };
  const e = s.expect;
  const ok = observed.allow === e.allow && (e.allow || (observed.status === e.status && (e.error === undefined || observed.error === e.error)));
  return { ok, expected: e, observed };
}
