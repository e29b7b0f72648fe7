// `mcp-authz check`: the full pipeline in-process on one sample request, printed as JSON.
import { readFileSync } from 'node:fs';
import type { LoadedConfig } from '../config/load.js';
import { runCheck } from '../check/pipeline.js';
import { denyBody } from '../check/outcome.js';
import { silentLogger } from '../log/logger.js';
import { createMetricsRegistry } from '../metrics/registry.js';
import { buildRuntime } from '../server/build-runtime.js';
import { toCheckResponse } from '../envoy/to-response.js';
import { sampleToWire, type SampleRequest } from './wire-request.js';

export function parseHeaderFlag(h: string): [string, string] {
  const i = h.indexOf(':', h.startsWith(':') ? 1 : 0);
  if (i <= 0) throw new Error(`-H expects 'name: value', got ${JSON.stringify(h)}`);
  return [h.slice(0, i).trim(), h.slice(i + 1).trim()];
}

export function readBodyFlag(b: string | undefined): string | undefined {
  if (b === undefined) return undefined;
  return b.startsWith('@') ? readFileSync(b.slice(1), 'utf8') : b;
}

export async function explain(loaded: LoadedConfig, sample: SampleRequest): Promise<Record<string, unknown>> {
  const rt = await buildRuntime(loaded, silentLogger(), createMetricsRegistry(), { watch: false, sharedLimits: false });
  try {
    const trace = await runCheck(rt, sampleToWire(sample));
    const o = trace.outcome;
    const ctx = trace.ctx;
    return {
      decision: o.allow ? 'allow' : 'deny',
      status: o.status,
      reason: o.allow ? o.reason : o.code,
      body: o.allow ? undefined : safeJson(denyBody(o)),
      headers: o.allow
        ? { set: o.headers, remove: o.headersToRemove, removeQueryParams: o.queryParamsToRemove, response: o.responseHeaders }
        : { set: o.headers },
      endpoint: ctx?.endpoint?.name ?? null,
      principal: ctx?.principal ?? null,
      authFailure: ctx?.authFailure ?? null,
      authWhy: ctx?.authWhy ?? null,
      mcp: ctx?.mcp ?? null,
      policy: ctx?.policy
        ? {
            revision: ctx.policy.revision ?? null,
            // The input exactly as the policy saw it (credentials already redacted).
            input: typeof ctx.policy.input === 'string' ? safeJson(ctx.policy.input) : ctx.policy.input ?? null,
            result: ctx.policy.result ?? null,
            decision: ctx.policy.realDecision ?? null,
            durationMs: ctx.policy.durationNs !== undefined ? ctx.policy.durationNs / 1e6 : null,
          }
        : null,
      notReady: rt.notReady?.() ?? [],
      checkResponse: toCheckResponse(o),
    };
  } finally {
    await rt.close();
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}
