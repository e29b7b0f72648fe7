// `mcp-authz check`: the full pipeline in-process on one sample request, printed as JSON.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import type { PolicyRecord, ShadowVerdict } from '../decision/context.js';
import type { LoadedConfig } from '../config/load.js';
import { responseBody } from '../contracts/outcome.js';
import { readCheckRequest } from '../ext-authz/check-codec.js';
import { toRequest } from '../envoy/to-request.js';
import { toCheckResponse } from '../ext-authz/answer.js';
import { silentLogger } from '../log/logger.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { buildRuntime } from '../pipeline/build-runtime.js';
import { runCheck } from '../pipeline/pipeline.js';
import { explainResponse, type ResponseTypeFlag } from './check-response.js';
import { explainPolicy, policySourceDir } from './policy-explain.js';
import { sampleToWire, type SampleRequest } from './wire-request.js';

export interface ExplainRequest {
  /** Add the policy's rule trace from `opa eval --explain` (policy.explain). */
  trace?: boolean;
  /** The .rego source of a bundle that does not carry it. */
  rego?: string;
  /** A sample upstream response to the request: explain how its lists are filtered (ext_proc). */
  response?: { text: string; type: ResponseTypeFlag };
  /** A candidate bundle (file or folder) or .rego folder: its decision on the same input, beside the enforced one. */
  shadow?: string;
}

export function parseHeaderFlag(h: string): [string, string] {
  const i = h.indexOf(':', h.startsWith(':') ? 1 : 0);
  if (i <= 0) throw new Error(`-H expects 'name: value', got ${JSON.stringify(h)}`);
  return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
}

/** A flag's text: `-` (or `@-`) reads standard input, `@file` a file, anything else is the text itself. */
export function readBodyFlag(b: string | undefined): string | undefined {
  if (b === undefined) return undefined;
  if (b === '-' || b === '@-') return readFileSync(0, 'utf8');
  return b.startsWith('@') ? readFileSync(b.slice(1), 'utf8') : b;
}

/** A CheckRequest's bytes (e.g. from --check-request): decoded exactly as a Check from Envoy is. */
export interface CapturedCheckRequest {
  checkRequest: Uint8Array;
}

export async function explain(
  loaded: LoadedConfig,
  sample: SampleRequest | CapturedCheckRequest,
  request: ExplainRequest = {},
): Promise<Record<string, unknown>> {
  // The candidate is evaluated by the service's own shadow evaluator (docs/shadow.md), on the input the policy saw.
  const withShadow: LoadedConfig =
    request.shadow === undefined
      ? loaded
      : { ...loaded, config: { ...loaded.config, shadow: { ...shadowSource(request.shadow), queueSize: 1 } } };
  const rt = await buildRuntime(withShadow, silentLogger(), createMetricsRegistry(), {
    watch: false,
    sharedLimits: false,
    tracing: false,
    upstreamCredentials: false,
  });
  try {
    const trace =
      'checkRequest' in sample
        ? await runCheck(rt, readCheckRequest, sample.checkRequest)
        : await runCheck(rt, toRequest, sampleToWire(sample));
    await rt.shadow?.settled();
    const { outcome: o, ctx, policy, decisionId } = trace;
    return {
      decision: o.kind,
      status: o.status,
      reason: o.allow ? o.reason : o.code,
      body: o.allow ? undefined : safeJson(responseBody(o)),
      headers: o.allow
        ? {
            set: o.headers,
            remove: o.headersToRemove,
            removeQueryParams: o.queryParamsToRemove,
            response: o.responseHeaders,
          }
        : { set: o.headers },
      endpoint: ctx?.endpoint?.name ?? null,
      principal: ctx?.principal ?? null,
      authFailure: ctx?.authFailure?.code ?? null,
      authDetail: ctx?.authFailure?.detail ?? null,
      authWhy: ctx?.authFailure?.why ?? null,
      mcp: ctx?.mcp ?? null,
      policy: policy
        ? {
            revision: policy.revision,
            // The input exactly as the policy saw it (credentials already redacted).
            input: safeJson(policy.input),
            result: policy.result ?? null,
            decision: policy.decision,
            // Which argument constraint denied (the shipped policy's argument rules), if one did.
            deniedArgument: deniedArgument(policy.result),
            // What the policy asked for when it held the call for a person (docs/approvals.md).
            approval: approvalAsked(policy.result),
            durationMs: policy.durationNs / 1e6,
            ...(request.trace ? { explain: traceOf(loaded, policy, request.rego) } : {}),
          }
        : request.trace
          ? {
              explain: { evaluated: false, why: `decided before the policy was asked: ${o.allow ? o.reason : o.code}` },
            }
          : null,
      ...(request.shadow !== undefined ? { shadow: shadowReport(trace.shadow, rt.shadow?.loadError) } : {}),
      notReady: rt.notReady(),
      checkResponse: toCheckResponse(o, decisionId),
      ...(request.response
        ? { response: explainResponse(rt, trace, request.response.text, request.response.type) }
        : {}),
    };
  } finally {
    await rt.close();
  }
}

/** A folder of .rego files without a policy.wasm is Rego source; anything else a bundle. */
function shadowSource(path: string): { bundle: string } | { rego: string } {
  try {
    if (statSync(path).isDirectory()) {
      const names = readdirSync(path);
      if (!names.includes('policy.wasm') && names.some((n) => n.endsWith('.rego'))) return { rego: path };
    }
  } catch {
    // A missing path is reported by the policy loader, with the service's own words.
  }
  return { bundle: path };
}

function shadowReport(v: ShadowVerdict | undefined, loadError: string | undefined): Record<string, unknown> {
  if (v === undefined) return { evaluated: false, why: 'the policy was not evaluated for this request' };
  if (v.state !== 'done' || !v.shadow || !v.enforced)
    return { evaluated: false, why: loadError ?? `the shadow policy is ${v.state}` };
  return {
    evaluated: true,
    differs: v.differs === true,
    enforced: { decision: v.enforced.decision, reason: v.enforced.code, revision: v.enforced.revision },
    shadow: {
      decision: v.shadow.decision,
      reason: v.shadow.code,
      revision: v.shadow.revision,
      result: v.shadow.result ?? null,
    },
  };
}

function approvalAsked(result: unknown): unknown {
  const a = result !== null && typeof result === 'object' ? (result as { approval?: unknown }).approval : undefined;
  return a ?? null;
}

function traceOf(loaded: LoadedConfig, policy: PolicyRecord, rego: string | undefined): unknown {
  const source = policySourceDir(loaded.config, rego);
  if ('missing' in source) return { evaluated: false, why: source.missing };
  // opa evaluates what the policy evaluated (with raw credentials: their values, over stdin);
  // what it prints has every credential string replaced.
  const credentials = policy.credentials;
  return explainPolicy(
    loaded.config,
    source.dir,
    credentials?.input() ?? policy.input,
    policy.result,
    'full',
    credentials?.strings() ?? [],
  );
}

function deniedArgument(result: unknown): unknown {
  if (result === null || typeof result !== 'object') return null;
  return (result as Record<string, unknown>).denied_argument ?? null;
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}
