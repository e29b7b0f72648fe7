// What the service really answers, for the docs' `<!-- test: shape NAME -->` blocks: each
// scenario makes the request the doc describes through the real pipeline (the config loader,
// the key registry, the shipped policy compiled to WASM, the limiters) and returns the answer
// Envoy would get (status, headers and body of the CheckResponse), or the part of `mcp-authz
// check`'s output the doc shows. A new JSON example in the docs gets a scenario here.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { explain } from '../../src/cli/check-command.js';
import { explainResponse } from '../../src/cli/check-response.js';
import { sampleToWire, type SampleRequest } from '../../src/cli/wire-request.js';
import { loadConfigFile, type LoadedConfig } from '../../src/config/load.js';
import { toRequest } from '../../src/envoy/to-request.js';
import { toCheckResponse } from '../../src/ext-authz/answer.js';
import { silentLogger } from '../../src/log/logger.js';
import { createMetricsRegistry } from '../../src/metrics/registry.js';
import { buildRuntime } from '../../src/pipeline/build-runtime.js';
import { runCheck } from '../../src/pipeline/pipeline.js';
import type { Runtime } from '../../src/pipeline/runtime.js';

export interface Answer {
  status: number;
  headers: Record<string, string>;
  body: unknown;
}

export type ScenarioResult = { answer: Answer } | { json: unknown } | { lines: string[] };

const ROOT = join(import.meta.dirname, '..', '..');
const QUICKSTART = join(ROOT, 'examples', 'quickstart');
const ARGUMENTS = join(ROOT, 'examples', 'arguments');
/** The quickstart's demo keys (README "Quickstart"). */
const DEMO_PUBLIC = 'mcp_4ecesAyZIs3wgIv1Ce6D58DGsD629PCqum63ZejV3DS12LP3l';
const DEMO_ALICE = 'mcp_xyYYchpA9lLusZ0O6HPm79uuB6brgsPXBg07ZrGQdw73Oywvs';
/** examples/arguments' demo-agent key (its config's comment). */
const DEMO_AGENT = 'mcp_xUW4CC837mhtFxthPzIWD79bgYmjWpggg112keZIdDQ4OmHSh';

/** An example's config with changes, written beside a copy of its keys file, loaded as `serve` loads it. */
function exampleConfig(example: string, change: (c: Record<string, any>) => void = () => {}): LoadedConfig {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-docs-scenario-'));
  cpSync(join(example, 'keys.yaml'), join(dir, 'keys.yaml'));
  const config = parseYaml(readFileSync(join(example, 'config.yaml'), 'utf8')) as Record<string, any>;
  change(config);
  writeFileSync(join(dir, 'config.yaml'), stringify(config));
  return loadConfigFile(join(dir, 'config.yaml'), {});
}

const rpc = (method: string, params?: unknown, id: number | string = 1) =>
  JSON.stringify({ jsonrpc: '2.0', id, method, ...(params !== undefined ? { params } : {}) });

/** Several requests through one runtime (limits count across them); the last one's answer. */
async function answers(loaded: LoadedConfig, samples: SampleRequest[]): Promise<Answer[]> {
  const rt: Runtime = await buildRuntime(loaded, silentLogger(), createMetricsRegistry(), {
    watch: false,
    sharedLimits: false,
    tracing: false,
  });
  try {
    const out: Answer[] = [];
    for (const s of samples)
      out.push(
        wireAnswer(toCheckResponse((await runCheck(rt, toRequest, sampleToWire(s))).outcome) as Record<string, any>),
      );
    return out;
  } finally {
    await rt.close();
  }
}

/** The CheckResponse as Envoy reads it: the denied response's status, headers and body. */
function wireAnswer(cr: Record<string, any>): Answer {
  const denied = cr.denied_response;
  if (!denied)
    return {
      status: 200,
      headers: Object.fromEntries((cr.ok_response?.headers ?? []).map((h: any) => [h.header.key, h.header.value])),
      body: undefined,
    };
  const body = denied.body as string | undefined;
  let parsed: unknown = body;
  try {
    parsed = body === undefined ? undefined : JSON.parse(body);
  } catch {
    /* not JSON: the text */
  }
  return {
    status: Number(denied.status.code),
    headers: Object.fromEntries((denied.headers ?? []).map((h: any) => [h.header.key.toLowerCase(), h.header.value])),
    body: parsed,
  };
}

const post = (path: string, headers: [string, string][], body?: string): SampleRequest => ({
  method: 'POST',
  path,
  headers: [['content-type', 'application/json'], ...headers],
  ...(body !== undefined ? { body } : {}),
});

export const SCENARIOS: Record<string, () => Promise<ScenarioResult>> = {
  /** docs/origins.md: a browser page from an origin the endpoint does not list. */
  async origin_not_allowed() {
    const [a] = await answers(exampleConfig(QUICKSTART), [
      post(
        '/mcp/public',
        [
          ['x-api-key', DEMO_PUBLIC],
          ['origin', 'https://evil.example'],
        ],
        rpc('tools/list'),
      ),
    ]);
    return { answer: a! };
  },

  /** docs/rate-limits.md: the failed-authentication lockout (maxAttempts lowered to 2, a window no pause of the machine outlasts). */
  async too_many_requests() {
    const loaded = exampleConfig(
      QUICKSTART,
      (c) => (c.rateLimit = { failedAuth: { maxAttempts: 2, windowSeconds: 3600 } }),
    );
    const bad = post('/mcp/public', [['x-api-key', 'mcp_not_a_key']], rpc('tools/list'));
    const all = await answers(loaded, [bad, bad, bad]);
    return { answer: all[2]! };
  },

  /** docs/quotas.md: a per-tool quota spent (burst 1, a rate that does not refill during the test). */
  async quota_exceeded() {
    const loaded = exampleConfig(
      QUICKSTART,
      (c) => (c.rateLimit = { perTool: [{ name: 'deletes', match: 'tools:delete_*', rps: 0.001, burst: 1 }] }),
    );
    const del = post(
      '/mcp/public',
      [['x-api-key', DEMO_PUBLIC]],
      rpc('tools/call', { name: 'delete_file', arguments: {} }),
    );
    const all = await answers(loaded, [del, del]);
    return { answer: all[1]! };
  },

  /** docs/errors.md: a list response that cannot be filtered, as `check --response` shows it. */
  async list_withheld() {
    const out = (await explain(
      exampleConfig(QUICKSTART),
      post('/mcp/public', [['x-api-key', DEMO_PUBLIC]], rpc('tools/list')),
      {
        response: { text: JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: 'not a list' } }), type: 'json' },
      },
    )) as { response: { body: string } };
    return { json: JSON.parse(out.response.body) };
  },

  /** docs/mcp-protocol.md: an Mcp-Name header that is not the body's tool name. */
  async mcp_header_mismatch() {
    const [a] = await answers(exampleConfig(QUICKSTART), [
      post(
        '/mcp/public',
        [
          ['x-api-key', DEMO_PUBLIC],
          ['mcp-protocol-version', '2026-07-28'],
          ['mcp-method', 'tools/call'],
          ['mcp-name', 'resume'],
        ],
        rpc('tools/call', {
          name: 'résumé',
          arguments: {},
          _meta: {
            'io.modelcontextprotocol/protocolVersion': '2026-07-28',
            'io.modelcontextprotocol/clientCapabilities': {},
          },
        }),
      ),
    ]);
    return { json: a!.body };
  },

  /** docs/mcp-protocol.md: a protocol version the service does not read. */
  async unsupported_protocol_version() {
    const [a] = await answers(exampleConfig(QUICKSTART), [
      post(
        '/mcp/public',
        [
          ['x-api-key', DEMO_PUBLIC],
          ['mcp-protocol-version', '2099-01-01'],
        ],
        rpc('tools/list', undefined, 11),
      ),
    ]);
    return { json: a!.body };
  },

  /** docs/workload-identity.md: the principal of an mTLS workload, in the policy's input. */
  async workload_principal() {
    const loaded = exampleConfig(QUICKSTART, (c) => {
      c.endpoints.push({
        name: 'files',
        match: { pathPrefix: '/mcp/files' },
        auth: { apiKey: true, mtls: true },
        workloads: { 'spiffe://cluster.local/ns/agents/sa/planner': ['tools:search'] },
      });
    });
    const out = (await explain(loaded, {
      ...post('/mcp/files', [], rpc('tools/call', { name: 'search', arguments: {} })),
      peerPrincipal: 'spiffe://cluster.local/ns/agents/sa/planner',
    })) as { policy: { input: { principal: unknown } } };
    return { json: out.policy.input.principal };
  },

  /** docs/policies.md "Input": alice's key in a header and the query, a call under an argument rule, opa-envoy-plugin's fields. */
  async policy_input() {
    const args = parseYaml(readFileSync(join(ARGUMENTS, 'config.yaml'), 'utf8')) as { endpoints: { data: unknown }[] };
    const loaded = exampleConfig(QUICKSTART, (c) => {
      c.publicBaseUrl = 'https://mcp.example.com';
      c.policy = { envoyInput: true };
      c.endpoints.push({
        name: 'files',
        match: { pathPrefix: '/mcp/files' },
        owner: 'alice',
        auth: { apiKey: true, oauth: false, queryParamKeys: true },
        resource: 'https://mcp.example.com/mcp/files',
        data: args.endpoints[0]!.data,
      });
    });
    const rt = await buildRuntime(loaded, silentLogger(), createMetricsRegistry(), {
      watch: false,
      sharedLimits: false,
      tracing: false,
    });
    try {
      const wire = sampleToWire({
        ...post(
          `/mcp/files?q=1&api_key=${DEMO_ALICE}`,
          [
            ['x-api-key', DEMO_ALICE],
            ['mcp-protocol-version', '2025-06-18'],
          ],
          rpc('tools/call', { name: 'http_get', arguments: { url: 'https://api.example.com/v1' } }),
        ),
        host: 'mcp.example.com',
        sourceAddress: '10.1.2.3',
      }) as any;
      // Envoy stamps the request's time (sampleToWire, like `mcp-authz check`, does not).
      wire.attributes.request.time = { seconds: '1700000000', nanos: 0 };
      const trace = await runCheck(rt, toRequest, wire);
      if (!trace.policy) throw new Error(`decided before the policy: ${JSON.stringify(trace.outcome)}`);
      return { json: JSON.parse(trace.policy.input) };
    } finally {
      await rt.close();
    }
  },

  /** docs/ext_proc.md: the visibility rule's input for a tools/list response. */
  async visible_input() {
    const loaded = exampleConfig(QUICKSTART);
    const rt = await buildRuntime(loaded, silentLogger(), createMetricsRegistry(), {
      watch: false,
      sharedLimits: false,
      tracing: false,
    });
    try {
      const trace = await runCheck(
        rt,
        toRequest,
        sampleToWire(post('/mcp/alice', [['x-api-key', DEMO_ALICE]], rpc('tools/list'))),
      );
      // The bytes handed to the WASM visibility rule, taken on their way in.
      const engine = (rt.authorizer as any).opts.policy.current.engine;
      let seen: string | undefined;
      const original = engine.evaluateVisible.bind(engine);
      engine.evaluateVisible = (input: string) => {
        seen = input;
        return original(input);
      };
      explainResponse(
        rt,
        trace,
        JSON.stringify({ jsonrpc: '2.0', id: 1, result: { tools: [{ name: 'search' }, { name: 'delete_repo' }] } }),
        'json',
      );
      if (seen === undefined) throw new Error('the visibility rule was not asked');
      return { json: JSON.parse(seen) };
    } finally {
      await rt.close();
    }
  },

  /** docs/tracing.md: the JSON line examples/envoy/envoy.yaml's access log writes (its fields, Envoy's format strings as values). */
  async envoy_access_log() {
    const doc = parseYaml(readFileSync(join(ROOT, 'examples', 'envoy', 'envoy.yaml'), 'utf8')) as Record<string, any>;
    const hcm = doc.static_resources.listeners[0].filter_chains[0].filters[0].typed_config;
    return { json: hcm.access_log[0].typed_config.log_format.json_format };
  },

  /** docs/policies.md "The deny": the descriptions of two argument denies. */
  async argument_denied_descriptions() {
    const loaded = exampleConfig(ARGUMENTS);
    const all = await answers(loaded, [
      post(
        '/mcp/tools',
        [['x-api-key', DEMO_AGENT]],
        rpc('tools/call', { name: 'http_get', arguments: { url: 'https://api.example.com@evil.example/' } }),
      ),
      post(
        '/mcp/tools',
        [['x-api-key', DEMO_AGENT]],
        rpc('tools/call', { name: 'read_multiple_files', arguments: { paths: ['/docs/a.md', '/etc/passwd'] } }),
      ),
    ]);
    return { lines: all.map((a) => (a.body as { error_description: string }).error_description) };
  },
};
