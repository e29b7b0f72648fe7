// The docs test's own parts (test/docs/), shown to fail where a doc is wrong: an unmarked or
// stray block, a claim the command breaks (the README's old "allowed" example, which answered
// 400 missing_body), a JSON example the service no longer matches, and each real validator
// refusing a broken block.
import test from 'ava';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { renderChart, validateObject } from './helpers/helm.js';
import { headerMatches, matchPattern, parseAnswer, parsePattern } from './docs/json-pattern.js';
import { extractBlocks } from './docs/markdown.js';
import { parseMarker } from './docs/markers.js';
import {
  brokenClaims,
  commentStart,
  lineRegex,
  parseClaims,
  parseShell,
  runCommands,
  transcriptDiff,
  type CommandResult,
} from './docs/shell.js';
import {
  checkConfig,
  checkEnvoy,
  checkExcerpt,
  checkFrom,
  checkHelmValues,
  checkKubernetes,
  checkMeshConfig,
  checkPaths,
  checkPromql,
  checkRego,
  checkTypescript,
  checkUsage,
  containsTree,
  metricProblems,
  promqlExpressions,
  usagesOf,
} from './docs/validators.js';
import { makeWorkdir } from './docs/workdir.js';

const ROOT = join(import.meta.dirname, '..');
const CODES = new Set(['access_denied', 'invalid_api_key', 'missing_body', 'authentication_required']);
const result = (stdout: string, code = 0, stderr = ''): CommandResult => ({
  command: { line: 1, text: 'x' },
  code,
  stdout,
  stderr,
});

// ---------------------------------------------------------------------------------------
// Extraction and markers

test('blocks are found with their language, line, section and the marker above them', (t) => {
  const md = [
    '# Title',
    '',
    '## Try it',
    '',
    '<!-- test: run -->',
    '',
    '```sh',
    'echo hi',
    '```',
    '',
    '1. A step:',
    '   <!-- other note -->',
    '   <!-- test: config -->',
    '   ```yaml',
    '   listen: {}',
    '   ```',
    '',
    '~~~',
    'plain',
    '~~~',
  ].join('\n');
  const { blocks, problems } = extractBlocks('x.md', md);
  t.deepEqual(problems, []);
  t.deepEqual(
    blocks.map((b) => [b.line, b.lang, b.section, b.marker, b.text]),
    [
      [7, 'sh', 'Try it', 'run', 'echo hi\n'],
      [14, 'yaml', 'Try it', 'config', 'listen: {}\n'],
      [18, '', 'Try it', undefined, 'plain\n'],
    ],
  );
});

test('a marker with prose between it and the block, two markers, and an unclosed fence are problems', (t) => {
  const stray = extractBlocks('x.md', '<!-- test: run -->\nSome prose.\n```sh\nls\n```\n');
  t.is(stray.blocks[0]!.marker, undefined);
  t.regex(stray.problems[0]!.message, /not directly above a fenced block/);
  t.is(stray.problems[0]!.line, 1);
  t.regex(
    extractBlocks('x.md', '<!-- test: run -->\n<!-- test: config -->\n```sh\nls\n```\n').problems[0]!.message,
    /two test markers/,
  );
  t.regex(extractBlocks('x.md', '```sh\nls\n').problems[0]!.message, /never closed/);
  t.regex(extractBlocks('x.md', 'text\n<!-- test: run -->\n').problems[0]!.message, /not directly above/);
});

test('markers: every kind parses; a skip needs a reason; an unknown kind is an error', (t) => {
  t.deepEqual(parseMarker('run; serve; file a.yaml = examples/envoy/envoy.yaml'), {
    check: { kind: 'run', serve: true, files: { 'a.yaml': 'examples/envoy/envoy.yaml' } },
  });
  t.deepEqual(parseMarker('config; alternatives; from examples/x.yaml'), {
    check: { kind: 'config', alternatives: true, from: 'examples/x.yaml' },
  });
  t.deepEqual(parseMarker('envoy http filter'), { check: { kind: 'envoy', shape: 'http filter' } });
  t.deepEqual(parseMarker('shape quota_exceeded; types'), {
    check: { kind: 'shape', scenario: 'quota_exceeded', typesOnly: true },
  });
  t.deepEqual(parseMarker('skip — needs a Kubernetes cluster'), {
    check: { kind: 'skip', reason: 'needs a Kubernetes cluster' },
  });
  t.deepEqual(parseMarker('excerpt of a.ts, b.ts'), { check: { kind: 'excerpt', files: ['a.ts', 'b.ts'] } });
  for (const bad of [
    'skip',
    'skip — later',
    'skip because',
    'execute',
    'run; quickly',
    'promql; from x.yaml',
    'shape x; exact',
  ])
    t.true('error' in parseMarker(bad), bad);
});

// ---------------------------------------------------------------------------------------
// Shell blocks and claims

test('shell blocks split into commands with continuations, claims above or after, and # inside quotes', (t) => {
  const cmds = parseShell(
    [
      '# prose only',
      'KEY=abc   # a note',
      '# bob → 403 access_denied',
      'mcp-authz check --path /p \\',
      '  --body \'{"a":"#1"}\'',
      "echo 'it''s' # → exit 0",
      'call() { echo "x',
      'y"; }',
    ].join('\n'),
    10,
  );
  t.deepEqual(
    cmds.map((c) => [c.line, c.claims]),
    [
      [11, undefined],
      [13, '403 access_denied'],
      [15, 'exit 0'],
      [16, undefined],
    ],
  );
  t.is(commentStart('echo \'# not\' "# not" # yes'), 21);
  t.throws(() => parseShell('# → allow\nls # → exit 0\n', 1), { message: /both above the command and after it/ });
});

test('a transcript keeps what each command prints, and random values match any of their form', (t) => {
  const [c] = parseShell(
    '$ mcp-authz keys create --name x\nKey:\n  mcp_CEP8SS2m5nWWfSjQRK2CEDfDdbgtYvX9VWmfDeBqlgg1FwQbR\n',
    1,
  );
  t.is(c!.expected, 'Key:\n  mcp_CEP8SS2m5nWWfSjQRK2CEDfDdbgtYvX9VWmfDeBqlgg1FwQbR');
  t.deepEqual(transcriptDiff(c!.expected!, 'Key:\n  mcp_0000000000aaaaaaaaaaBBBBBBBBBBcccccccccc123456789\n'), []);
  t.is(transcriptDiff(c!.expected!, 'Key:\n  mcp_short\n').length, 1);
  t.is(
    transcriptDiff('id: x-5bab9d\nexpires: 2030-01-01T00:00:00.000Z', 'id: x-0f00aa\nexpires: 2031-02-03T04:05:06.000Z')
      .length,
    0,
  );
  t.false(
    lineRegex('name: ChatGPT Connector').test('name: ChatGPT connector'),
    'ordinary words are compared as they are',
  );
  t.is(transcriptDiff('a\nb', 'a').length, 1, 'a line the doc shows and the command does not print');
});

test('claims: words that are not claims are refused, so prose cannot pass for one', (t) => {
  t.deepEqual(parseClaims('403 access_denied, "not granted", not "WWW-Authenticate", exit 3', CODES), [
    { k: 'status', v: 403 },
    { k: 'code', v: 'access_denied' },
    { k: 'text', v: 'not granted' },
    { k: 'absent', v: 'WWW-Authenticate' },
    { k: 'exit', v: 3 },
  ]);
  t.throws(() => parseClaims('403, path (dot_segment)', CODES), { message: /"path" is not a claim/ });
  t.throws(() => parseClaims('allowed with headers', CODES), { message: /not a claim/ });
});

test("claims are checked against check's JSON, curl -i output and the exit code", (t) => {
  const check = JSON.stringify({
    decision: 'deny',
    status: 403,
    reason: 'access_denied',
    authDetail: null,
    headers: { set: [{ name: 'x-mcp-principal', value: 'bob' }] },
    body: { error_description: 'tool delete_file not granted' },
  });
  const claims = (s: string) => parseClaims(s, CODES);
  t.deepEqual(
    brokenClaims(claims('deny, 403 access_denied, "not granted", "x-mcp-principal: bob", exit 3'), result(check, 3)),
    [],
  );
  t.deepEqual(
    brokenClaims(claims('allow, 200, invalid_api_key, "granted to you", not "delete_file", exit 0'), result(check, 3)),
    ['allow', '200', 'invalid_api_key', '"granted to you"', 'not "delete_file"', 'exit 0'],
  );
  const curl = 'HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\n\r\n{"error":"invalid_api_key"}';
  t.deepEqual(brokenClaims(claims('401 invalid_api_key'), result(curl)), []);
  t.deepEqual(brokenClaims(claims('200'), result(curl)), ['200']);
});

test('the README\'s old "allowed" example, run for real, breaks its claim: it is 400 missing_body', async (t) => {
  // Before the docs test, the quickstart showed this command as the allowed case, without a body.
  const block =
    "node bin/mcp-authz.js check --path /mcp/public -H 'x-api-key: mcp_4ecesAyZIs3wgIv1Ce6D58DGsD629PCqum63ZejV3DS12LP3l'   # → allow\n";
  const { dir, env } = makeWorkdir(ROOT);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const [r] = await runCommands(parseShell(block, 1), {
    cwd: dir,
    env,
    outDir: join(dir, '.out'),
    deadlineMs: 300_000,
  });
  t.is(r!.code, 3);
  t.deepEqual(brokenClaims(parseClaims(r!.command.claims!, CODES), r!), ['allow']);
  t.regex(r!.stdout, /"reason": "missing_body"/);
});

test('commands run in one shell: a variable and a function carry over, and each keeps its own exit code and output', async (t) => {
  const { dir, env } = makeWorkdir(ROOT);
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const cmds = parseShell('X=hello\nsay() { echo "$X $1"; }\nsay world\nfalse\necho "$PWD" >&2\n', 1);
  const rs = await runCommands(cmds, { cwd: dir, env, outDir: join(dir, '.out'), deadlineMs: 60_000 });
  t.deepEqual(
    rs.map((r) => r.code),
    [0, 0, 0, 1, 0],
  );
  t.is(rs[2]!.stdout, 'hello world\n');
  t.is(rs[4]!.stderr.trim(), dir);
  t.false(
    Object.keys(env).some((k) => k.startsWith('MCP_')),
    'a block sees no MCP_* variable of the test run',
  );
  const npm = await runCommands(parseShell('ls node_modules package.json\n', 1), {
    cwd: dir,
    env,
    outDir: join(dir, '.out2'),
    deadlineMs: 60_000,
  });
  t.not(
    npm[0]!.code,
    0,
    "no package.json or node_modules to run npm on: npm ci would empty the checkout's through a link",
  );
});

// ---------------------------------------------------------------------------------------
// JSON examples

test('a JSON example: what it shows must be there; what it leaves out needs a …', (t) => {
  const actual = {
    error: 'quota_exceeded',
    error_description: 'Quota "deletes" exceeded: retry in 3 s',
    quota: 'deletes',
    retry_after: 3,
    timestamp: '2026-01-01T00:00:00Z',
  };
  t.deepEqual(
    matchPattern(
      parsePattern(
        '{"error":"quota_exceeded","error_description":"Quota \\"deletes\\" exceeded: …","quota":"deletes","retry_after":N,…}',
      ),
      actual,
    ),
    [],
  );
  t.deepEqual(
    matchPattern(
      parsePattern('{"error":"quota_exceeded", "quota":"deletes", "retry_after": 3, "timestamp": "…"}'),
      actual,
    ),
    [
      '$.error_description: the service gives "Quota \\"deletes\\" exceeded: retry in 3 s", the doc does not show it (and has no "…" there)',
    ],
  );
  t.deepEqual(matchPattern(parsePattern('{"error":"too_many_requests", "retry_after": 4, "gone": 1, …}'), actual), [
    '$.error: the doc shows "too_many_requests", the service gives "quota_exceeded"',
    '$.retry_after: the doc shows 4, the service gives 3',
    "$.gone: shown in the doc, absent from the service's answer",
  ]);
  t.deepEqual(matchPattern(parsePattern('[1, …]'), [1, 2, 3]), []);
  t.is(matchPattern(parsePattern('[1, 2]'), [1, 2, 3]).length, 1);
});

test('a JSON example with `types` compares members and types, not values; comments are notes', (t) => {
  const p = parsePattern('{ "id": "alice-key",   // the key id\n  "roles": ["user"], "n": 1, "on": true, "x": null }');
  t.deepEqual(matchPattern(p, { id: 'demo', roles: ['a', 'b'], n: 7, on: false, x: null }, { typesOnly: true }), []);
  t.is(matchPattern(p, { id: 1, roles: [2], n: 'x', on: 'yes', x: 0 }, { typesOnly: true }).length, 5);
  t.throws(() => parsePattern('{"a": 1'), { message: /ends early|expected/ });
});

test('an HTTP answer: status, JSON body and header lines', (t) => {
  const a = parseAnswer('429  {"error":"too_many_requests",...}\nRetry-After: N\n')!;
  t.is(a.status, 429);
  t.deepEqual(a.headers, [['Retry-After', 'N']]);
  t.deepEqual(matchPattern(a.body, { error: 'too_many_requests', retry_after: 5 }), []);
  t.true(headerMatches('N', '12'));
  t.false(headerMatches('N', 'soon'));
  t.false(headerMatches('N', undefined));
  t.is(parseAnswer('{"a":1}'), undefined);
});

// ---------------------------------------------------------------------------------------
// The validators, each refusing a broken block with the real reader

test("config: the service's schema names the bad field; alternatives are read one by one", (t) => {
  t.deepEqual(checkConfig('endpoints:\n  - name: files\n    match: { pathPrefix: /mcp/files }\n', false), []);
  t.regex(
    checkConfig(
      'endpoints:\n  - name: files\n    match: { pathPrefix: /mcp/files }\n    auth: { apiKey: true, oauth: true }\n',
      false,
    ).join('\n'),
    /endpoints\.0\.auth\.oauth: oauth is on but no oauth\.issuers/,
  );
  t.regex(checkConfig('rateLimit: { failedAuth: { maxAtempts: 3 } }\n', false).join('\n'), /maxAtempts/);
  t.regex(checkConfig('a: 1\na: 2\n', false).join('\n'), /not valid YAML/);
  t.deepEqual(
    checkConfig('clientAddress: { from: source }\nclientAddress: { from: x-envoy-external-address }\n', true),
    [],
  );
  t.is(checkConfig('clientAddress: { from: source }\nclientAddress: { from: somewhere }\n', true).length, 1);
});

test('a block that is part of a file: keys and items may be left out, what is shown must be equal', (t) => {
  const whole = { spec: { patches: [{ a: 1, b: { c: 2, d: 3 } }, { a: 2 }] }, other: true };
  t.true(containsTree(whole, { patches: [{ b: { c: 2 } }] }));
  t.true(containsTree(whole, { spec: { patches: [{ a: 2 }] } }));
  t.false(containsTree(whole, { patches: [{ b: { c: 3 } }] }));
  t.false(containsTree(whole, { patches: [{ a: 2 }, { a: 1 }] }), 'items in another order');
  t.deepEqual(checkFrom(ROOT, 'normalize_path: true\nmerge_slashes: true\n', 'examples/envoy/envoy.yaml'), []);
  t.is(checkFrom(ROOT, 'normalize_path: false\n', 'examples/envoy/envoy.yaml').length, 1);
});

test('Envoy and Istio blocks are read by their generated types: a misspelt field is refused', async (t) => {
  t.deepEqual(await checkEnvoy(ROOT, 'normalize_path: true\n', 'connection manager'), []);
  t.regex(
    (await checkEnvoy(ROOT, 'normalise_path: true\n', 'connection manager')).join('\n'),
    /unknown field "normalise_path"/,
  );
  const filter =
    '- name: envoy.filters.http.ext_proc\n  typed_config:\n    "@type": type.googleapis.com/envoy.extensions.filters.http.ext_proc.v3.ExternalProcessor\n    grpc_service: { envoy_grpc: { cluster_name: mcp-authz } }\n    message_timeout: 0.5s\n';
  t.deepEqual(await checkEnvoy(ROOT, filter, 'http filter'), []);
  t.regex(
    (await checkEnvoy(ROOT, filter.replace('message_timeout', 'message_timout'), 'http filter')).join('\n'),
    /message_timout/,
  );
  t.deepEqual(
    await checkMeshConfig(
      ROOT,
      'meshConfig:\n  extensionProviders:\n    - name: x\n      envoyExtAuthzGrpc: { service: a.b.svc.cluster.local, port: 9191 }\n',
    ),
    [],
  );
  t.regex(
    (
      await checkMeshConfig(
        ROOT,
        'meshConfig:\n  extensionProviders:\n    - name: x\n      envoyExtAuthzGrpc: { service: a, prot: 9191 }\n',
      )
    ).join('\n'),
    /prot/,
  );
});

test('Kubernetes objects and chart values are read by their schemas', async (t) => {
  const pa =
    'apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: { name: x, namespace: mcp }\nspec:\n  mtls: { mode: STRICT }\n';
  t.deepEqual(await checkKubernetes(ROOT, pa, validateObject), []);
  t.true((await checkKubernetes(ROOT, pa.replace('mode: STRICT', 'mode: 42'), validateObject)).length > 0);
  const render = async (f: string) => renderChart({ files: [f] }).objects;
  t.deepEqual(await checkHelmValues('replicaCount: 2\n', render, validateObject), []);
  t.regex((await checkHelmValues('replicaCont: 2\n', render, validateObject)).join('\n'), /replicaCont/);
});

test('PromQL: promtool refuses a parse error; a metric or label the service does not have is named', async (t) => {
  const labels = new Map([['mcp_authz_check_total', new Set(['endpoint', 'decision', 'status'])]]);
  t.deepEqual(
    promqlExpressions('# a\nsum by (decision) (rate(mcp_authz_check_total[5m]))\n  / 2\nrate(x[1m])\n', 5).map(
      (e) => e.line,
    ),
    [6, 8],
  );
  t.deepEqual(metricProblems('sum by (decision) (rate(mcp_authz_check_total{endpoint="a"}[5m]))', labels), []);
  t.deepEqual(metricProblems('sum by (tool) (rate(mcp_authz_check_total{code="a"}[5m])) + mcp_authz_nope', labels), [
    'mcp_authz_check_total{code}: the metric has no label code',
    'mcp_authz_nope: the service has no such metric',
    'by (tool): no metric of the expression has the label tool',
  ]);
  t.regex(
    (await checkPromql(ROOT, [{ line: 3, expr: 'sum by (decision (rate(mcp_authz_check_total[5m]))' }], labels)).join(
      '\n',
    ),
    /line 3: promtool: .*parse error/,
  );
});

test("Rego: compiled with the service's capabilities, and its test_ rules must pass", async (t) => {
  t.deepEqual(
    await checkRego(ROOT, 'package docs\n\nallow if input.x == 1\n\ntest_allow if allow with input as {"x": 1}\n'),
    [],
  );
  t.regex((await checkRego(ROOT, 'package docs\n\nallow if input.x ==\n')).join('\n'), /opa check/);
  t.regex(
    (
      await checkRego(
        ROOT,
        'package docs\n\nallow if http.send({"method": "get", "url": "http://x"}).status_code == 200\n',
      )
    ).join('\n'),
    /http\.send|undefined function/,
  );
  t.regex(
    (
      await checkRego(ROOT, 'package docs\n\nallow if input.x == 1\n\ntest_allow if allow with input as {"x": 2}\n')
    ).join('\n'),
    /opa test/,
  );
});

test("usage lines are the commands' own --help synopses, every form of each", async (t) => {
  const help = async (args: string[]) =>
    args[0] === '--help'
      ? 'usage: mcp-authz <command>\n  mcp-authz --version    the version\n'
      : 'usage: mcp-authz serve [--config FILE]\n                       [--workers N]\n       mcp-authz serve --check-config\n       (npm run serve)\n\noptions:\n';
  t.deepEqual(usagesOf(await help(['serve', '--help'])), [
    'mcp-authz serve [--config FILE] [--workers N]',
    'mcp-authz serve --check-config',
  ]);
  t.deepEqual(
    await checkUsage(
      'mcp-authz serve [--config FILE] [--workers N]   # runs it\nmcp-authz serve --check-config\nmcp-authz --version\n',
      help,
    ),
    [],
  );
  t.deepEqual(await checkUsage('mcp-authz serve [--config FILE] [--workers N]\n', help), [
    'the doc does not show: mcp-authz serve --check-config',
  ]);
  t.is(
    (await checkUsage('mcp-authz serve [--config FILE]\nmcp-authz serve --check-config\nmcp-authz --verbose\n', help))
      .length,
    2,
  );
});

test('paths and excerpts: what a block names or quotes from the repository exists', (t) => {
  t.deepEqual(checkPaths(ROOT, 'decode  src/envoy/to-request.ts (ext_authz Check)'), []);
  t.deepEqual(checkPaths(ROOT, 'decode  src/envoy/from-request.ts'), [
    'src/envoy/from-request.ts: no such file or folder',
  ]);
  t.deepEqual(
    checkExcerpt(ROOT, '// a note\nconst callHeader: CallHeader<BytesCall> = (call, name) => call.header(name);\n', [
      'src/ext-authz/check.ts',
    ]),
    [],
  );
  t.is(
    checkExcerpt(ROOT, 'const callHeader = (call, name) => call.header(name);\n', ['src/ext-authz/check.ts']).length,
    1,
  );
});

test('TypeScript blocks are type-checked against the installed packages', async (t) => {
  const r = await checkTypescript(ROOT, [
    {
      name: 'good',
      imports: ["import { Client } from '@modelcontextprotocol/sdk/client/index.js'"],
      text: "const c = new Client({ name: 'x', version: '1' });\nvoid c;\n",
    },
    {
      name: 'bad',
      imports: ["import { Client } from '@modelcontextprotocol/sdk/client/index.js'"],
      text: "const c = new Client({ name: 'x', version: '1' });\nc.connectTo('x');\n",
    },
  ]);
  t.deepEqual(r.get('good'), []);
  t.regex(r.get('bad')!.join('\n'), /line 2 of the block: .*connectTo/);
});
