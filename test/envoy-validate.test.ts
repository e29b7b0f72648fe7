// The Envoy and Istio examples are read by Envoy's and Istio's own generated types
// (test/envoy-validate, a Go program on go-control-plane and istio.io/api, built into
// .build/bin by `scripts/install-tools.sh envoy-validate`): protojson refuses unknown fields
// and wrong types, and every message — typed configs included — passes its validation rules.
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DECISION_ID_KEY } from '../src/envoy/to-response.js';
import { ROOT } from './helpers/helm.js';

const BIN = join(ROOT, '.build', 'bin', 'envoy-validate');
const ENVOY = join(ROOT, 'examples', 'envoy', 'envoy.yaml');
const MESH = join(ROOT, 'examples', 'istio', 'mesh-config.yaml');

function validate(kind: 'bootstrap' | 'istio-mesh', file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  if (!existsSync(BIN)) throw new Error('envoy-validate is not built: run `scripts/install-tools.sh envoy-validate` (npm test does it in pretest)');
  return new Promise((resolve) => {
    execFile(BIN, [kind, file], (err, stdout, stderr) => resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
  });
}

/** A copy of `file` with one text replacement, which must apply. */
function edited(file: string, from: string, to: string): string {
  const text = readFileSync(file, 'utf8');
  if (!text.includes(from)) throw new Error(`${file} no longer contains ${JSON.stringify(from)}`);
  const out = join(mkdtempSync(join(tmpdir(), 'mcp-authz-validate-')), 'edited.yaml');
  writeFileSync(out, text.replace(from, to));
  return out;
}

test('the Envoy example is a valid v3 Bootstrap, with every typed config read and checked', async (t) => {
  const r = await validate('bootstrap', ENVOY);
  t.is(r.code, 0, r.stderr);
  for (const type of [
    'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
    'envoy.extensions.filters.http.ext_authz.v3.ExtAuthz',
    'envoy.extensions.filters.http.router.v3.Router',
    'envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
  ]) t.true(r.stdout.includes(type), `${type} checked:\n${r.stdout}`);
});

test('the validator refuses a rule broken inside a typed config, an unknown field and a bad enum value', async (t) => {
  const zeroBody = await validate('bootstrap', edited(ENVOY, 'max_request_bytes: 1048576', 'max_request_bytes: 0'));
  t.is(zeroBody.code, 1);
  t.regex(zeroBody.stderr, /ExtAuthz.*MaxRequestBytes: value must be greater than 0/s);
  const typo = await validate('bootstrap', edited(ENVOY, 'failure_mode_allow: false', 'failure_mode_alow: false'));
  t.is(typo.code, 1);
  t.regex(typo.stderr, /unknown field "failure_mode_alow"/);
  const action = await validate('bootstrap', edited(ENVOY, 'path_with_escaped_slashes_action: REJECT_REQUEST', 'path_with_escaped_slashes_action: REJECT'));
  t.is(action.code, 1);
  t.regex(action.stderr, /invalid value for enum/);
});

test('the Istio mesh config is a valid istio.mesh.v1alpha1.MeshConfig with the mcp-authz provider', async (t) => {
  const r = await validate('istio-mesh', MESH);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /extension providers: mcp-authz/);
});

test('the validator refuses a mesh config field Istio does not have, and a wrong type', async (t) => {
  const typo = await validate('istio-mesh', edited(MESH, 'failOpen: false', 'failOpen: false\n          statusOnErr: "503"'));
  t.is(typo.code, 1);
  t.regex(typo.stderr, /unknown field "statusOnErr"/);
  const type = await validate('istio-mesh', edited(MESH, 'port: 9191', 'port: "nine"'));
  t.is(type.code, 1);
  t.regex(type.stderr, /port/);
});

test('the Envoy example\'s access log prints the decision id from the ext_authz filter\'s dynamic metadata, and no path', async (t) => {
  const text = readFileSync(ENVOY, 'utf8');
  // The namespace is the filter's canonical name; the key is the one mcp-authz writes.
  t.true(text.includes('- name: envoy.filters.http.ext_authz'));
  t.true(text.includes(`decision_id: "%DYNAMIC_METADATA(envoy.filters.http.ext_authz:${DECISION_ID_KEY})%"`));
  // A path's query string can carry an API key: the log never prints one.
  t.false(/%REQ\(:PATH\)%|%REQ\(X-ENVOY-ORIGINAL-PATH/.test(text));
  const r = await validate('bootstrap', ENVOY);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.includes('envoy.extensions.access_loggers.stream.v3.StdoutAccessLog'), r.stdout);
});

test('the Envoy tracer set-up in docs/tracing.md is valid in the example\'s connection manager', async (t) => {
  const doc = readFileSync(join(ROOT, 'docs', 'tracing.md'), 'utf8');
  const block = /```yaml\n(tracing:\n[\s\S]*?)```/.exec(doc)?.[1];
  t.truthy(block, 'docs/tracing.md has the tracing: block');
  const indented = block!.trimEnd().split('\n').map((l) => ' '.repeat(16) + l).join('\n');
  const file = edited(ENVOY, '                stat_prefix: mcp\n', `                stat_prefix: mcp\n${indented}\n`);
  const r = await validate('bootstrap', file);
  t.is(r.code, 0, r.stderr);
  t.true(r.stdout.includes('envoy.config.trace.v3.OpenTelemetryConfig'), r.stdout);
});
