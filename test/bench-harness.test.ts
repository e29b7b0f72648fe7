// The benchmark's own parts that decide what its figures mean: the load generator's CPU,
// the decision tally under load, the gRPC frame h2load sends, and the transport study's
// servers, which must decide exactly as the product's grpc-js server does.
import test from 'ava';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { generateApiKey, hashApiKey } from '../src/contracts/api-key.js';
import { authorizationService } from '../src/envoy/protos.js';
import { tally } from '../bench/lib/decision-counts.js';
import { benchPins } from '../bench/lib/bench-tools.js';
import { APPROVAL_PATHS, closedLoop, extProcScenarios, grantOnPage } from '../bench/lib/ext-proc.js';
import { grpcFrame } from '../bench/lib/h2load.js';
import { freePort, parseCpuTimes, run, start, withCpuTimes, type Started } from '../bench/lib/processes.js';
import { root } from '../bench/lib/paths.js';
import { scenarios, type Scenario } from '../bench/lib/scenarios.js';
import { CheckClient, HttpCheckClient } from '../bench/lib/verify.js';
import { startTestService } from './helpers/service.js';

test("a load generator's CPU time is read from its own shell once it exits, and the marker is taken out of stderr", async (t) => {
  const [cmd, args] = withCpuTimes('node', [
    '-e',
    'let x = 0; for (let i = 0; i < 3e8; i++) x += i; process.stderr.write("done\\n")',
  ]);
  const r = await run(cmd, args);
  t.is(r.code, 0);
  const { cpuSec, stderr } = parseCpuTimes(r.stderr);
  t.true(cpuSec !== undefined && cpuSec > 0);
  t.is(stderr, 'done\n');
});

test("without the shell's marker there is no CPU figure rather than a zero", (t) => {
  t.deepEqual(parseCpuTimes('h2load: connect failed\n'), { cpuSec: undefined, stderr: 'h2load: connect failed\n' });
});

test("the decision tally counts only what changed, and anything but the scenario's decision as other", (t) => {
  const before = { 'deny 401': 10, 'allow 200': 3 };
  const after = { 'deny 401': 110, 'allow 200': 3, 'deny 503': 2 };
  t.deepEqual(tally(before, after, { allow: false, status: 401 }), {
    counted: 102,
    expected: 100,
    other: { 'deny 503': 2 },
  });
  t.deepEqual(tally(before, after, { allow: true, status: 200 }), {
    counted: 102,
    expected: 0,
    other: { 'deny 401': 100, 'deny 503': 2 },
  });
});

test('a unary gRPC request body is the uncompressed flag, the big-endian length and the message', (t) => {
  const msg = authorizationService().Check!.requestSerialize({ attributes: { request: { http: { path: '/mcp' } } } });
  const frame = grpcFrame(msg);
  t.is(frame[0], 0);
  t.is(frame.readUInt32BE(1), msg.length);
  t.deepEqual(frame.subarray(5), msg);
});

// The transport study's servers run the compiled dist/ modules (npm test builds them first).
// They bind port 0 and say which port they got: a port found free and bound later can be taken
// meanwhile by another test's process or connection.
async function startStudyServer(transport: string, config: string): Promise<{ server: Started; port: number }> {
  let ready!: (port: number) => void;
  const isReady = new Promise<number>((r) => (ready = r));
  const server = start(
    'node',
    [
      '--import',
      'tsx',
      join(root, 'bench', 'transports', 'serve.ts'),
      '--transport',
      transport,
      '--config',
      config,
      '--port',
      '0',
      '--metrics-port',
      '0',
    ],
    {
      cwd: root,
      onStdout: (line) => {
        const m = /^READY (\d+) \d+$/.exec(line);
        if (m) ready(Number(m[1]));
      },
      captureStderr: true,
    },
  );
  let stderr = '';
  server.child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const port = await Promise.race([
    isReady,
    server.exited.then((code) =>
      Promise.reject(new Error(`${transport} exited (${code}) before it was ready:\n${stderr.slice(-2000)}`)),
    ),
  ]);
  return { server, port };
}

function studyConfig(apiKey: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'bench-transports-'));
  writeFileSync(
    join(dir, 'keys.yaml'),
    stringify({
      keys: [
        {
          id: 'owner',
          sha256: hashApiKey(apiKey),
          name: 'Owner',
          userId: 'bench-user',
          role: 'user',
          permissions: ['tools:search', 'tools:read_*'],
        },
      ],
    }),
  );
  const config = join(dir, 'mcp-authz.yaml');
  writeFileSync(
    config,
    stringify({
      apiKeys: { file: 'keys.yaml' },
      policy: { bundle: join(root, 'policies', 'build', 'bundle.tar.gz') },
      endpoints: [
        {
          name: 'files',
          match: { pathPrefix: '/mcp/files' },
          owner: 'bench-user',
          auth: { apiKey: true, oauth: false },
        },
      ],
    }),
  );
  return config;
}

const apiKey = generateApiKey();
const keyScenarios: Scenario[] = scenarios({
  apiKey,
  unknownApiKey: generateApiKey(),
  token: 'unused',
  distinctTokens: ['unused'],
}).filter((s) => ['apikey_tool_allow', 'apikey_tool_deny', 'invalid_key'].includes(s.name));

for (const transport of ['grpc-js', 'connect', 'lean-http2', 'http1'] as const) {
  test(`the transport study's ${transport} server decides allow, tool deny and invalid key as the scenarios expect`, async (t) => {
    const { server, port } = await startStudyServer(transport, studyConfig(apiKey));
    const grpcClient = transport === 'http1' ? undefined : new CheckClient(`127.0.0.1:${port}`);
    const httpClient = transport === 'http1' ? new HttpCheckClient(`http://127.0.0.1:${port}`) : undefined;
    try {
      for (const s of keyScenarios) {
        const v = grpcClient
          ? await grpcClient.verify(s.requests[0]!, s.expect)
          : await httpClient!.verify(s.http[0]!, s.expect);
        t.true(v.ok, `${s.name}: ${JSON.stringify(v)}`);
      }
    } finally {
      grpcClient?.close();
      httpClient?.close();
      await server.stop();
    }
  });
}

test("the ext_proc benchmark's exchanges, played as its client loop plays them, get the answers it expects from the real server", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'bench-ext-proc-'));
  writeFileSync(
    join(dir, 'keys.yaml'),
    stringify({
      keys: [
        {
          id: 'owner',
          sha256: hashApiKey(apiKey),
          name: 'Owner',
          userId: 'bench-user',
          role: 'user',
          permissions: ['tools:search', 'tools:read_*'],
        },
      ],
    }),
  );
  // The pinned scenarios' endpoint and pins, as bench/config/mcp-authz.yaml and bench/run.ts set them.
  writeFileSync(join(dir, 'pins.yaml'), benchPins());
  // The approval scenarios' endpoints and page, as withApprovals (bench/lib/ext-proc.ts) sets them.
  const sessionKey = randomBytes(32);
  writeFileSync(join(dir, 'session.key'), sessionKey);
  writeFileSync(
    join(dir, 'receipt.pem'),
    generateKeyPairSync('ed25519').privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
  );
  const publicUrl = `http://127.0.0.1:${await freePort()}`;
  const rule = {
    name: 'bench',
    tools: ['read_file'],
    group: 'bench-approvers',
    reason: 'benchmark',
    uses: 1000,
    windowSeconds: 86400,
  };
  const held = (name: string, pathPrefix: string) => ({
    name,
    match: { pathPrefix },
    owner: 'bench-user',
    auth: { apiKey: true, oauth: false },
    data: { approvals: [rule] },
  });
  const svc = await startTestService(
    {
      listen: { http: publicUrl.slice('http://'.length) },
      apiKeys: { file: 'keys.yaml' },
      pins: { file: 'pins.yaml' },
      approvals: {
        publicUrl,
        receiptKeyFile: 'receipt.pem',
        sessionKeyFile: 'session.key',
        oidc: { issuer: 'http://127.0.0.1:9/', clientId: 'bench' },
        pendingSeconds: 30,
      },
      endpoints: [
        held('files-held', APPROVAL_PATHS.held),
        held('files-pending', APPROVAL_PATHS.pending),
        {
          name: 'files',
          match: { pathPrefix: '/mcp/files' },
          owner: 'bench-user',
          auth: { apiKey: true, oauth: false },
        },
        {
          name: 'files-pinned',
          match: { pathPrefix: '/mcp/files-pinned' },
          owner: 'bench-user',
          auth: { apiKey: true, oauth: false },
        },
      ],
    },
    { dir },
  );
  t.teardown(() => svc.stop());
  const list = extProcScenarios(apiKey);
  t.deepEqual(
    list.filter((s) => s.sameAs).map((s) => s.sameAs),
    [
      'check_tool_allow',
      'check_tools_list',
      'check_tools_list',
      'ext_proc_list_json',
      'check_tool_allow',
      'ext_proc_tool_allow',
      'check_tool_allow',
      'check_tool_deny',
      'check_tool_deny',
    ],
  );
  for (const s of list) {
    const round = await closedLoop(s, {
      target: `127.0.0.1:${svc.grpcPort}`,
      connections: 1,
      concurrency: 2,
      durationSec: 0.2,
      server: { pid: process.pid } as Started,
      grant: (id) => grantOnPage(publicUrl, sessionKey, id),
    });
    t.is(round.errors, 0, `${s.name}: ${round.errorSamples.join('; ')}`);
    t.true(round.exchanges > 0, s.name);
    t.is(s.verify([]) === undefined, false, `${s.name}: no answer is never right`);
  }
});
