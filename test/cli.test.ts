import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { stringify } from 'yaml';
import { clientConstructors } from '../src/envoy/protos.js';
import { main } from '../src/cli/main.js';
import { ROOT, runCli, startCli } from './helpers/cli.js';
import { checkRequest, rpc, startTestService } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

const config = {
  endpoints: [
    { name: 'open', match: { pathPrefix: '/mcp/open' }, auth: { apiKey: false, oauth: false } },
    { name: 'keyed', match: { pathPrefix: '/mcp/keyed' }, auth: { apiKey: true, oauth: false } },
  ],
};

function writeConfig(obj: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-cli-'));
  const file = join(dir, 'config.yaml');
  writeFileSync(file, typeof obj === 'string' ? obj : stringify(obj));
  return file;
}

test('check prints the same decision the server returns for the same request', async (t) => {
  const svc = await startTestService(config);
  t.teardown(() => svc.stop());
  const samples = [
    { path: '/mcp/open', body: rpc('tools/call', { name: 'search' }), headers: ['x-mcp-user-id: forged'] },
    { path: '/mcp/keyed', body: rpc('tools/list'), headers: [] },
    { path: '/mcp/open', body: '{"jsonrpc":"2.0","id":1,"method":"a","method":"b"}', headers: [] },
    { path: '/elsewhere', body: rpc('ping'), headers: [] },
  ];
  for (const s of samples) {
    const cli = await runCli([
      'check',
      '--config',
      svc.configFile,
      '--method',
      'POST',
      '--path',
      s.path,
      '--host',
      'mcp.example.com',
      '--body',
      s.body,
      ...s.headers.flatMap((h) => ['-H', h]),
    ]);
    const printed = JSON.parse(cli.stdout);
    const headers = Object.fromEntries(s.headers.map((h) => [h.split(':')[0]!, h.slice(h.indexOf(':') + 1).trim()]));
    const res = await svc.check(
      checkRequest({
        method: 'POST',
        path: s.path,
        host: 'mcp.example.com',
        headers,
        body: s.body,
        source: '127.0.0.1',
      }),
    );
    const server = res.ok_response ? 'allow' : 'deny';
    t.is(printed.decision, server, s.path);
    t.is(cli.code, server === 'allow' ? 0 : 3);
    if (res.denied_response) {
      const a = JSON.parse(res.denied_response.body!);
      t.is(printed.body.error, a.error);
      t.is(printed.body.error_description, a.error_description);
      t.is(printed.checkResponse.status.code, res.status!.code);
    } else {
      t.deepEqual(printed.checkResponse.ok_response.headers_to_remove, res.ok_response!.headers_to_remove);
      t.deepEqual(
        printed.checkResponse.ok_response.headers.map((h: any) => h.header),
        res.ok_response!.headers!.map((h) => h.header),
      );
    }
  }
});

test('a bad config exits non-zero and names every bad field', async (t) => {
  const file = writeConfig({
    listen: { grpc: 'nowhere' },
    endpoints: [{ name: 'bad name!', match: {}, auth: { apiKey: 'yes' } }],
    oauth: { issuers: [{ issuer: 'https://idp.example.com', algorithms: ['HS256'] }] },
    bogus: 1,
  });
  const r = await runCli(['serve', '--config', file, '--check-config']);
  t.is(r.code, 1);
  for (const field of [
    'listen.grpc',
    'endpoints.0.name',
    'endpoints.0.match',
    'endpoints.0.auth.apiKey',
    'oauth.issuers.0.algorithms.0',
    'bogus',
  ]) {
    t.true(r.stderr.includes(field), `${field} named in:\n${r.stderr}`);
  }
  t.regex(r.stderr, /HS\* and none are refused/);
});

test('a config that is not YAML, or is missing, exits non-zero with the reason', async (t) => {
  const notYaml = await runCli(['serve', '--config', writeConfig('endpoints: [\n  - {name: a')]);
  t.is(notYaml.code, 1);
  t.regex(notYaml.stderr, /not valid YAML/);
  const missing = await runCli(['serve', '--config', '/nonexistent/config.yaml']);
  t.is(missing.code, 1);
  t.regex(missing.stderr, /cannot read file/);
});

test('--check-config accepts the quickstart', async (t) => {
  const r = await runCli(['serve', '--check-config']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /configuration is valid/);
});

test('a config whose HTTP port serves the AuthZEN API runs one worker; an explicit --workers 2 is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-cli-'));
  writeFileSync(join(dir, 'authzen-secret'), 'a-shared-secret-of-some-length');
  const file = writeConfig({
    ...config,
    listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0' },
    authzen: { enabled: true, secretFile: join(dir, 'authzen-secret') },
  });
  const refused = await runCli(['serve', '--config', file, '--workers', '2']);
  t.is(refused.code, 2, refused.stderr);
  t.regex(
    refused.stderr,
    /authzen\.enabled \(the AuthZEN API\): served by the process that decides Checks.*serve --workers 1/,
  );

  // Without --workers (the default is the cores): one process, and the log says why.
  const srv = await startCli(['serve', '--config', file], { MCP_AUTHZ_LOG_LEVEL: 'info' });
  t.teardown(() => void srv.child.kill('SIGKILL'));
  // On more than one core the default would have been several workers: the log says why not.
  if (availableParallelism() > 1) t.regex(srv.logs(), /"msg":"one worker: authzen\.enabled/);
  t.regex(srv.logs(), /"workers":1,"msg":"mcp-authz starting"/);
  const res = await fetch(`http://127.0.0.1:${srv.httpPort}/.well-known/authzen-configuration`);
  t.is(res.status, 200, 'the single process serves the AuthZEN metadata on the HTTP port');
});

test('serve stops on SIGTERM after answering every call it accepted', async (t) => {
  const file = writeConfig({ ...config, listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0' } });
  const srv = await startCli(['serve', '--config', file, '--workers', '1']);
  const { Authorization } = clientConstructors();
  const client = new Authorization(`127.0.0.1:${srv.grpcPort}`, grpc.credentials.createInsecure()) as any;
  const req = checkRequest({ method: 'GET', path: '/mcp/open', host: 'h' });
  const one = () =>
    new Promise<any>((resolve) => client.Check(req, (err: Error | null, res: any) => resolve(err ?? res)));
  t.truthy((await one()).ok_response, 'serving before the signal');
  const burst = Array.from({ length: 200 }, one);
  srv.child.kill('SIGTERM');
  const results = await Promise.all(burst);
  const answered = results.filter((r) => r.ok_response).length;
  const refused = results.filter((r) => r instanceof Error);
  // Calls the server accepted are answered; calls it never accepted fail as UNAVAILABLE (Envoy retries or denies).
  t.is(answered + refused.length, 200);
  t.true(
    refused.every((e: any) => e.code === grpc.status.UNAVAILABLE),
    refused.map((e: any) => e.message).join('\n'),
  );
  t.is(await srv.exited, 0);
  t.regex(srv.logs(), /draining in-flight Checks/);
  t.regex(srv.logs(), /mcp-authz stopped/);
  client.close();
});

// ---- Help, version and usage errors ----

const noStackTrace = (s: string) => !/\n\s+at .+:\d+:\d+\)?\n/.test(s);

/** The CLI's main() in this process, its output captured (serial tests only: stdout is shared). */
async function runMain(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = { stdout: '', stderr: '' };
  const [w1, w2] = [process.stdout.write, process.stderr.write];
  process.stdout.write = ((c: string | Uint8Array) => ((out.stdout += String(c)), true)) as typeof process.stdout.write;
  process.stderr.write = ((c: string | Uint8Array) => ((out.stderr += String(c)), true)) as typeof process.stderr.write;
  try {
    return { code: await main(args), ...out };
  } finally {
    process.stdout.write = w1;
    process.stderr.write = w2;
  }
}

/** The policy scripts as `mcp-authz policy build|test` runs them. */
function runScript(script: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(ROOT, 'scripts', script), ...args], (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test.serial('--help works on every command and subcommand: usage on stdout, exit 0, no stack trace', async (t) => {
  const runs = [];
  for (const args of [
    ['--help'],
    ['help'],
    ['serve', '--help'],
    ['serve', '-h'],
    ['check', '--help'],
    ['keys', '--help'],
    ['keys', 'create', '--help'],
    ['login', '--help'],
    ['help', 'login'],
    ['policy', '--help'],
    ['help', 'serve'],
  ]) {
    runs.push([args.join(' '), await runMain(args)] as const);
  }
  for (const [script, name] of [
    ['policy-build.mjs', 'policy build'],
    ['policy-test.mjs', 'policy test'],
  ])
    runs.push([`${name} --help`, await runScript(script!, ['--help'])] as const);
  for (const [what, r] of runs) {
    t.is(r.code, 0, `${what}: ${r.stderr}`);
    t.regex(r.stdout, /^usage: mcp-authz/m, what);
    t.notRegex(r.stdout + r.stderr, /Unknown option/, what);
    t.true(noStackTrace(r.stdout + r.stderr), what);
  }
  const help = Object.fromEntries(runs.map(([what, r]) => [what, r.stdout]));
  t.regex(help['serve --help']!, /--check-config/);
  t.regex(help['serve --help']!, /MCP_AUTHZ_LOG_LEVEL/);
  t.regex(help['serve --help']!, /MCP_AUTHZ_LOG_BUFFER_BYTES/);
  t.regex(help['check --help']!, /--explain/);
  t.regex(help['keys create --help']!, /--append FILE/);
  t.regex(help['login --help']!, /--no-browser/);
  t.regex(help['login --help']!, /^ +16  state_mismatch: /m, 'login --help lists its exit codes');
  t.is(help['help login'], help['login --help']);
  t.regex(help['check --help']!, /--bearer TOKEN/);
  t.regex(help['policy test --help']!, /--src DIR/);
  // The way a user types it, through bin/: the same usage.
  const real = await runCli(['policy', 'build', '--help']);
  t.is(real.code, 0);
  t.regex(real.stdout, /^usage: mcp-authz policy build/);
});

test.serial('--version prints the package version', async (t) => {
  const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  for (const flag of ['--version', '-v', 'version']) {
    const r = await runMain([flag]);
    t.is(r.code, 0);
    t.is(r.stdout, `mcp-authz ${version}\n`);
  }
});

test.serial(
  "an unknown option is a usage error: exit 2, the message and the command's usage, no stack trace",
  async (t) => {
    const runs = [
      [await runMain(['serve', '--bogus']), 'mcp-authz serve'],
      [await runMain(['check', '--nope']), 'mcp-authz check'],
      [await runMain(['keys', 'create', '--nope']), 'mcp-authz keys create'],
      [await runScript('policy-build.mjs', ['--nope']), 'mcp-authz policy build'],
      [await runScript('policy-test.mjs', ['--nope']), 'mcp-authz policy test'],
    ] as const;
    for (const [r, usage] of runs) {
      t.is(r.code, 2, usage);
      t.regex(r.stderr, /Unknown option/);
      t.true(r.stderr.includes(`usage: ${usage}`), usage);
      t.true(noStackTrace(r.stderr), usage);
    }
  },
);

test('MCP_AUTHZ_LOG_LEVEL: an unknown level stops serve naming the levels; a known one is applied', async (t) => {
  const bad = await runCli(['serve', '--config', writeConfig(config), '--workers', '1'], {
    MCP_AUTHZ_LOG_LEVEL: 'verbose',
  });
  t.is(bad.code, 1);
  t.regex(
    bad.stderr,
    /MCP_AUTHZ_LOG_LEVEL must be one of trace, debug, info, warn, error, fatal, silent; got "verbose"/,
  );
  // At warn, a policy that fails to load is logged (level 50) and "serving" (info, 30) is not.
  const file = writeConfig({
    ...config,
    policy: { bundle: 'missing.tar.gz' },
    listen: { grpc: '127.0.0.1:0', http: '127.0.0.1:0' },
  });
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', join(ROOT, 'src', 'cli', 'bin.ts'), 'serve', '--config', file, '--workers', '1'],
    { cwd: ROOT, env: { ...process.env, MCP_AUTHZ_LOG_LEVEL: 'warn' } },
  );
  t.teardown(() => child.kill('SIGKILL'));
  let logs = '';
  child.stderr.on('data', (d) => (logs += d));
  // A hang guard of 300 s, as the suite's others: a cold tsx start beside the other CLI tests' processes took over 100 s on a loaded machine.
  await waitFor('the policy load failure to be logged', () => logs.includes('policy load failed'), 300_000);
  t.regex(logs, /"level":50,/);
  t.notRegex(logs, /"level":30,/);
});

test('MCP_AUTHZ_LOG_BUFFER_BYTES: anything but a whole number of at least 4096 bytes stops serve saying so', async (t) => {
  for (const value of ['lots', '1024', '4096.5', '-1']) {
    const bad = await runCli(['serve', '--config', writeConfig(config), '--workers', '1'], {
      MCP_AUTHZ_LOG_BUFFER_BYTES: value,
    });
    t.is(bad.code, 1, value);
    t.regex(
      bad.stderr,
      new RegExp(
        `MCP_AUTHZ_LOG_BUFFER_BYTES must be a whole number of bytes, at least 4096; got "${value.replace('.', '\\.')}"`,
      ),
      value,
    );
  }
});

// ---- serve --check-config loads what serve loads ----

function writeFiles(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-cli-'));
  for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, name), content);
  return dir;
}

test('--check-config fails naming a missing keys file, a bad key entry, and a missing or broken policy bundle', async (t) => {
  const endpoints = config.endpoints;
  const cases: [Record<string, string | Buffer>, RegExp][] = [
    [
      { 'config.yaml': stringify({ apiKeys: { file: 'keys.yaml' }, endpoints }) },
      /API keys: .*keys\.yaml.*cannot read the keys file.*ENOENT/s,
    ],
    [
      {
        'config.yaml': stringify({ apiKeys: { file: 'keys.yaml' }, endpoints }),
        'keys.yaml': 'keys:\n  - id: a\n    sha256: nothex\n',
      },
      /keys\.0\.sha256/,
    ],
    [
      { 'config.yaml': stringify({ policy: { bundle: 'bundle.tar.gz' }, endpoints }) },
      /policy: cannot read policy bundle .*bundle\.tar\.gz/,
    ],
    [
      { 'config.yaml': stringify({ policy: { bundle: 'bundle.tar.gz' }, endpoints }), 'bundle.tar.gz': 'not a bundle' },
      /policy: .*not a \.tar\.gz file/,
    ],
    [{ 'config.yaml': stringify({ policy: { rego: 'rego' }, endpoints }) }, /policy: .*rego/],
  ];
  for (const [files, why] of cases) {
    const dir = writeFiles(files);
    const r = await runCli(['serve', '--config', join(dir, 'config.yaml'), '--check-config']);
    t.is(r.code, 1, r.stdout + r.stderr);
    t.regex(r.stderr, why);
    t.regex(r.stderr, /configuration is NOT ready/);
    t.notRegex(r.stdout, /configuration is valid/);
  }
});

test('--check-config reports the keys and the policy revision it loaded, the way serve loads them', async (t) => {
  const dir = writeFiles({
    'config.yaml': stringify({
      apiKeys: { file: 'keys.yaml' },
      policy: { bundle: 'bundle.tar.gz' },
      endpoints: config.endpoints,
    }),
    'keys.yaml': readFileSync(join(ROOT, 'examples', 'quickstart', 'keys.yaml')),
    'bundle.tar.gz': readFileSync(join(ROOT, 'policies', 'build', 'bundle.tar.gz')),
  });
  const r = await runCli(['serve', '--config', join(dir, 'config.yaml'), '--check-config']);
  t.is(r.code, 0, r.stderr);
  t.regex(r.stdout, /API keys: 3 from .*keys\.yaml/);
  const revision = readFileSync(join(ROOT, 'policies', 'build', 'bundle.tar.gz.revision'), 'utf8').trim();
  t.true(r.stdout.includes(`policy: revision ${revision}`), r.stdout);
  t.regex(r.stdout, /configuration is valid/);
});

test('--check-config says where spans go, and refuses a tracing variable serve cannot honour', async (t) => {
  const off = await runCli(['serve', '--check-config']);
  t.regex(off.stdout, /tracing: off/);
  const on = await runCli(['serve', '--check-config'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4318',
    OTEL_TRACES_SAMPLER: 'parentbased_traceidratio',
    OTEL_TRACES_SAMPLER_ARG: '0.1',
  });
  t.is(on.code, 0, on.stderr);
  t.regex(
    on.stdout,
    /tracing: OTLP\/HTTP protobuf to http:\/\/collector\.example:4318\/v1\/traces, service\.name mcp-authz, sampler parentbased_traceidratio 0\.1/,
  );
  const grpc = await runCli(['serve', '--check-config'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4317',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc',
  });
  t.is(grpc.code, 0, grpc.stderr);
  t.regex(grpc.stdout, /tracing: OTLP\/gRPC to http:\/\/collector\.example:4317, service\.name mcp-authz/);
  const bad = await runCli(['serve', '--check-config'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4318',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
  });
  t.is(bad.code, 1);
  t.regex(bad.stderr, /OTEL_EXPORTER_OTLP_PROTOCOL.*"http\/protobuf".*"grpc".*http\/json/);
});

test('serve stops at start-up on a tracing variable it cannot honour, naming it', async (t) => {
  const r = await runCli(['serve', '--workers', '2'], {
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector.example:4318',
    OTEL_TRACES_SAMPLER: 'sometimes',
  });
  t.is(r.code, 1);
  t.regex(r.stderr, /^mcp-authz: OTEL_TRACES_SAMPLER: one of always_on, /m);
});

// ---- check --explain ----

const bobKey = 'mcp_f0D5ooeh5v6N9RAzl6o2endlSqNDmnZawcsKKNqKYs13250s3';
const toolCall = (name: string) => JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name } });

test('check --explain adds the rule trace of the real opa eval, which decides as the service did', async (t) => {
  for (const [tool, decision] of [
    ['delete_file', 'deny'],
    ['search', 'allow'],
  ] as const) {
    const r = await runCli([
      'check',
      '--path',
      '/mcp/public',
      '-H',
      `x-api-key: ${bobKey}`,
      '--body',
      toolCall(tool),
      '--explain',
    ]);
    const out = JSON.parse(r.stdout);
    t.is(out.decision, decision);
    const ex = out.policy.explain;
    t.is(ex.source, join(ROOT, 'policies', 'mcp'));
    t.deepEqual(ex.result, out.policy.result, 'opa on the source agrees with the WASM the service ran');
    t.true(ex.agreesWithService);
    t.regex(ex.trace[0], /^query:1\s+Enter data\.mcp\.authz\.decision/);
    t.true(
      ex.trace.some((l: string) => /decision\.rego:\d+\s+\|/.test(l)),
      "the trace walks the policy's rules",
    );
    t.false(JSON.stringify(ex).includes(bobKey), "the input opa saw is redacted like the policy's");
  }
});

test('check --explain says when the policy was not asked, and when the bundle carries no source without --rego', async (t) => {
  const early = JSON.parse((await runCli(['check', '--path', '/mcp/public', '--explain'])).stdout);
  t.deepEqual(early.policy.explain, {
    evaluated: false,
    why: 'decided before the policy was asked: authentication_required',
  });

  const dir = writeFiles({
    'config.yaml': stringify({ policy: { bundle: 'bundle.tar.gz' }, endpoints: config.endpoints }),
    'bundle.tar.gz': readFileSync(join(ROOT, 'policies', 'build', 'bundle.tar.gz')),
  });
  const args = [
    'check',
    '--config',
    join(dir, 'config.yaml'),
    '--path',
    '/mcp/open',
    '--body',
    toolCall('search'),
    '--explain',
  ];
  const bundleOnly = JSON.parse((await runCli(args)).stdout);
  t.is(bundleOnly.policy.explain.evaluated, false);
  t.regex(bundleOnly.policy.explain.why, /does not carry its Rego source.*--rego DIR/);
  const withSource = JSON.parse((await runCli([...args, '--rego', join(ROOT, 'policies', 'mcp')])).stdout);
  t.true(withSource.policy.explain.agreesWithService);
  t.true(withSource.policy.explain.trace.length > 5);
});

// ---- check --response ----

const listCall = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' });
const listResult = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  result: { tools: [{ name: 'search' }, { name: 'delete_file' }, { name: 'read_file' }] },
});

test('check --response explains a list filtering: each item, the call it stands for, visible or not, and the body sent on', async (t) => {
  const dir = writeFiles({ 'list.json': listResult, 'list.sse': `event: message\ndata: ${listResult}\n\n` });
  for (const file of ['list.json', 'list.sse']) {
    const r = await runCli([
      'check',
      '--path',
      '/mcp/public',
      '-H',
      `x-api-key: ${bobKey}`,
      '--body',
      listCall,
      '--response',
      `@${join(dir, file)}`,
    ]);
    t.is(r.code, 0, r.stderr);
    const { response } = JSON.parse(r.stdout);
    t.like(response, {
      evaluated: true,
      form: file.endsWith('.json') ? 'json' : 'sse',
      result: 'filtered',
      listCalls: { 1: 'tools/list' },
    });
    t.deepEqual(
      response.items.map((i: { item: string; visible: boolean }) => [i.item, i.visible]),
      [
        ['search', true],
        ['delete_file', false],
        ['read_file', false],
      ],
    );
    t.deepEqual(response.items[1].call, { method: 'tools/call', kind: 'request', name: 'delete_file' });
    t.is(response.policy.length, 1, 'one evaluation for the list');
    const body = file.endsWith('.json') ? response.body : response.body.split('data: ')[1];
    t.deepEqual(JSON.parse(body).result.tools, [{ name: 'search' }]);
  }
});

test('check --response says why a list is withheld, and when nothing would be listed', async (t) => {
  const withheld = JSON.parse(
    (
      await runCli([
        'check',
        '--path',
        '/mcp/public',
        '-H',
        `x-api-key: ${bobKey}`,
        '--body',
        listCall,
        '--response',
        '{"jsonrpc":"2.0","id":1,"result":{"tools":"all"}}',
      ])
    ).stdout,
  );
  t.like(withheld.response, { result: 'withheld', reason: 'malformed_list_result' });
  t.like(JSON.parse(withheld.response.body), {
    id: 1,
    error: { code: -32603, data: { reason: 'malformed_list_result' } },
  });
  const denied = JSON.parse(
    (
      await runCli([
        'check',
        '--path',
        '/mcp/alice',
        '-H',
        `x-api-key: ${bobKey}`,
        '--body',
        listCall,
        '--response',
        listResult,
      ])
    ).stdout,
  );
  t.like(denied.response, { evaluated: false });
  t.regex(denied.response.why, /not allowed \(access_denied\)/);
  const notList = JSON.parse(
    (
      await runCli([
        'check',
        '--path',
        '/mcp/public',
        '-H',
        `x-api-key: ${bobKey}`,
        '--body',
        toolCall('search'),
        '--response',
        listResult,
      ])
    ).stdout,
  );
  t.regex(notList.response.why, /no list call/);
  const bad = await runCli(['check', '--path', '/mcp/public', '--response', '{}', '--response-type', 'xml']);
  t.is(bad.code, 2);
  t.regex(bad.stderr, /--response-type expects json, sse or auto/);
});
