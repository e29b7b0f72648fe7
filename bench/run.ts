// npm run bench [-- options]: mcp-authz against a null grpc-js Check server and
// opa-envoy-plugin, on loopback, with ghz; or a soak of mcp-authz (--soak 10m).
// See README "Performance". Writes bench/results/<timestamp>.json and latest.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { authorizationService } from '../src/envoy/protos.js';
import { keyEntries, newApiKey, sha256Hex, startIssuer } from './lib/credentials.js';
import { ghzVersion, round, runLoad, type LoadResult } from './lib/ghz.js';
import { measureInProcess, printInProcess } from './lib/in-process.js';
import { startMcpAuthz, writeMcpAuthzConfig, type Prepared } from './lib/mcp-authz.js';
import { evalOpaEnvoyPolicy, opaEnvoyData } from './lib/opa-envoy.js';
import { mcpAuthzCli, out, root, shippedBundle, tools } from './lib/paths.js';
import { freePort, machineBusySeconds, run, sampleRss, start, treeCpuSeconds, waitIdle, type Started } from './lib/processes.js';
import { printTable, ratios, type SystemRun } from './lib/report.js';
import { scenarios, type Scenario } from './lib/scenarios.js';
import { runSoak } from './lib/soak.js';
import { CheckClient, describe } from './lib/verify.js';

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new Error(`bad duration "${s}" (e.g. 10s, 10m)`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : m[2] === 'h' ? n * 3600 : n;
}

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: '5s' },
    rounds: { type: 'string', default: '3' },
    'lone-duration': { type: 'string', default: '3s' },
    warmup: { type: 'string', default: '2s' },
    connections: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '50' },
    'open-concurrency': { type: 'string', default: '16' },
    'load-fraction': { type: 'string', default: '0.5' },
    systems: { type: 'string', default: 'null,mcp-authz,opa-envoy-plugin' },
    scenarios: { type: 'string' },
    'null-workers': { type: 'string', default: String(availableParallelism()) },
    'distinct-tokens': { type: 'string', default: '3000' },
    soak: { type: 'string' },
    'in-process': { type: 'boolean', default: false },
    calls: { type: 'string', default: '20000' },
    scenario: { type: 'string', default: 'apikey_tool_allow' },
    workers: { type: 'string' },
    'server-log': { type: 'boolean', default: false },
    'no-install': { type: 'boolean', default: false },
    'wait-idle': { type: 'string', default: '15s' },
    help: { type: 'boolean', short: 'h' },
  },
  strict: true,
});

if (opt.help) {
  process.stdout.write(`npm run bench -- [--duration 5s] [--rounds 3] [--lone-duration 3s] [--warmup 2s] [--connections 4] [--concurrency 50] [--open-concurrency 16]
  [--systems null,mcp-authz,opa-envoy-plugin] [--scenarios a,b] [--null-workers N] [--distinct-tokens N]
  [--server-log] [--no-install] [--wait-idle 15s]
npm run bench -- --soak 10m [--scenario apikey_tool_allow] [--workers N]
npm run bench -- --in-process [--calls 20000] [--scenarios a,b]
`);
  process.exit(0);
}

const settings = {
  durationSec: parseDuration(opt.duration!),
  rounds: Math.max(1, Number(opt.rounds)),
  loneDurationSec: parseDuration(opt['lone-duration']!),
  warmupSec: parseDuration(opt.warmup!),
  connections: Number(opt.connections),
  concurrency: Number(opt.concurrency),
  openConcurrency: Number(opt['open-concurrency']),
  loadFraction: Number(opt['load-fraction']),
  nullWorkers: Number(opt['null-workers']),
  distinctTokens: Number(opt['distinct-tokens']),
  waitIdleSec: parseDuration(opt['wait-idle']!),
};

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

// ---------------------------------------------------------------------------------------

async function prepareTools(): Promise<{ oep: { available: boolean; reason?: string } }> {
  const script = join(root, 'scripts', 'install-tools.sh');
  if (!opt['no-install']) {
    log('installing ghz (scripts/install-tools.sh ghz)');
    const g = await run(script, ['ghz'], { cwd: root, timeoutMs: 15 * 60_000 });
    if (g.code !== 0) throw new Error(`cannot install ghz:\n${g.stderr.trim().slice(-2000)}`);
  }
  if (!existsSync(tools.ghz)) throw new Error(`ghz missing at ${tools.ghz}`);
  let reason: string | undefined;
  if (!opt['no-install'] && !existsSync(tools.oep)) {
    log('installing opa-envoy-plugin (scripts/install-tools.sh opa-envoy-plugin)');
    const o = await run(script, ['opa-envoy-plugin'], { cwd: root, timeoutMs: 20 * 60_000 });
    if (o.code !== 0) reason = `scripts/install-tools.sh opa-envoy-plugin failed: ${o.stderr.trim().split('\n').filter((l) => !l.startsWith('go: downloading')).slice(-3).join(' | ')}`;
  }
  const available = existsSync(tools.oep);
  if (!available) reason ??= `opa-envoy-plugin missing at ${tools.oep}`;
  // Where the plugin cannot be had (the Go module proxy refuses it), measure opa-peer instead:
  // the plugin's Check path on OPA's own Go evaluator (bench/opa-peer/README.md).
  if (!available && !opt['no-install']) {
    log('installing opa-peer (scripts/install-tools.sh opa-peer)');
    const o = await run(script, ['opa-peer'], { cwd: root, timeoutMs: 20 * 60_000 });
    if (o.code !== 0) log(`opa-peer build failed: ${o.stderr.trim().slice(-500)}`);
  }
  return { oep: { available, ...(reason ? { reason } : {}) } };
}

async function buildProduct(): Promise<{ bundle: string | undefined; notes: string[] }> {
  const notes: string[] = [];
  log('building mcp-authz (npm run build)');
  const b = await run('npm', ['run', 'build'], { cwd: root, timeoutMs: 10 * 60_000 });
  if (b.code !== 0) throw new Error(`npm run build failed:\n${(b.stdout + b.stderr).trim().slice(-3000)}`);
  if (!existsSync(shippedBundle)) {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts?: Record<string, string> };
    const script = Object.keys(pkg.scripts ?? {}).find((s) => /^(polic(y|ies)[:-]build|build[:-]polic(y|ies))$/.test(s));
    if (script) {
      log(`building the policy bundle (npm run ${script})`);
      const p = await run('npm', ['run', script], { cwd: root, timeoutMs: 10 * 60_000 });
      if (p.code !== 0) notes.push(`npm run ${script} failed: ${(p.stdout + p.stderr).trim().slice(-500)}`);
    }
  }
  if (!existsSync(shippedBundle)) notes.push(`no shipped policy bundle at policies/build/bundle.tar.gz (the policy has not landed): mcp-authz runs its fail-closed placeholder`);
  return { bundle: existsSync(shippedBundle) ? shippedBundle : undefined, notes };
}

/**
 * Writes one ghz data file per scenario: the CheckRequests serialized with the official
 * protos (several: varint-length-prefixed, sent round-robin). Binary data spares ghz a
 * JSON-to-protobuf conversion per call, CPU it would otherwise take from the servers.
 */
function writeGhzData(list: Scenario[]): Map<string, string> {
  const dir = join(out, 'data');
  mkdirSync(dir, { recursive: true });
  const serialize = authorizationService().Check!.requestSerialize;
  const files = new Map<string, string>();
  for (const s of list) {
    const msgs = s.requests.map((r) => serialize(r));
    const file = join(dir, `${s.name}.bin`);
    writeFileSync(file, msgs.length === 1 ? msgs[0]! : Buffer.concat(msgs.flatMap((m) => [varint(m.length), m])));
    files.set(s.name, file);
  }
  return files;
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** A running server under test. */
interface Target {
  system: string;
  target: string;
  server: Started;
  /** What this server must answer for a scenario (the null server allows everything). */
  expect(s: Scenario): Scenario['expect'];
}

const NULL_EXPECT: Scenario['expect'] = { allow: true, status: 200 };

function median<T>(xs: T[], by: (x: T) => number): T {
  return [...xs].sort((a, b) => by(a) - by(b))[Math.floor((xs.length - 1) / 2)]!;
}

/**
 * One scenario on every server: each must decide the scenario's requests right first; then
 * `rounds` closed loops per server, interleaved (round r starts with server r), so a drift
 * in the machine's speed during the run touches every server alike; the median round is the
 * server's max. Then an open loop at a fraction of that max (latency under load), and a lone
 * call at a time (latency without queueing).
 */
async function measureScenario(s: Scenario, targets: Target[], dataFile: string): Promise<SystemRun[]> {
  const runs = new Map<Target, SystemRun>();
  const clients = new Map<Target, CheckClient>();
  const live: Target[] = [];
  for (const t of targets) {
    const expected = t.expect(s);
    const base: SystemRun = { system: t.system, scenario: s.name, what: t.system === 'null' ? `null server on ${s.name}'s requests (ceiling)` : s.what, expected, state: 'measured' };
    runs.set(t, base);
    const client = new CheckClient(t.target);
    clients.set(t, client);
    // Every distinct request of the scenario (first and last for a token set) must decide right.
    const probes = s.requests.length > 1 ? [s.requests[0]!, s.requests[s.requests.length - 1]!] : s.requests;
    try {
      for (const req of probes) {
        base.checkBefore = await client.verify(req, expected);
        if (!base.checkBefore.ok) break;
      }
      if (base.checkBefore?.ok) live.push(t);
      else runs.set(t, { ...base, state: 'check-failed', reason: describe(base.checkBefore!) });
    } catch (err) {
      runs.set(t, { ...base, state: 'error', reason: (err as Error).message.slice(0, 2000) });
    }
  }
  const fail = (t: Target, err: unknown) => {
    runs.set(t, { ...runs.get(t)!, state: 'error', reason: (err as Error).message.slice(0, 2000) });
    live.splice(live.indexOf(t), 1);
  };
  const common = (t: Target) => ({ ghz: tools.ghz, target: t.target, dataFile, connections: settings.connections, concurrency: settings.concurrency, outFile: join(out, `ghz-${t.system}-${s.name}.json`) });

  const idle = settings.waitIdleSec > 0 ? await waitIdle(settings.waitIdleSec) : undefined;
  if (idle && !idle.idle) log(`${s.name}: machine still busy (${idle.busyCores} cores) after ${idle.waitedSec}s: measuring anyway`);
  const rss = new Map(live.map((t) => [t, sampleRss(t.server.pid, 250)]));
  for (const t of [...live]) {
    log(`${t.system} ${s.name}: warm-up ${settings.warmupSec}s`);
    await runLoad({ ...common(t), durationSec: settings.warmupSec }).catch((err) => fail(t, err));
  }

  const rounds = new Map<Target, { load: LoadResult; cpu: NonNullable<SystemRun['cpu']> }[]>(live.map((t) => [t, []]));
  for (let r = 0; r < settings.rounds; r++) {
    const order = live.map((_, i) => live[(i + r) % live.length]!);
    for (const t of order) {
      log(`${t.system} ${s.name}: closed loop ${settings.durationSec}s (round ${r + 1} of ${settings.rounds})`);
      try {
        rounds.get(t)!.push(await closedLoop(t, common(t)));
      } catch (err) {
        fail(t, err);
      }
    }
  }

  for (const t of [...live]) {
    const best = median(rounds.get(t)!, (x) => x.load.rps);
    const rps = Math.max(1, Math.floor(best.load.rps * settings.loadFraction));
    log(`${t.system} ${s.name}: open loop at ${rps} rps (${settings.loadFraction * 100}% of ${best.load.rps}) for ${settings.durationSec}s; one call at a time for ${settings.loneDurationSec}s`);
    try {
      // Fewer workers than the closed loop: at a fixed rate, extra workers only add client-side
      // scheduling delay to the tail (null server at 5k rps: p99 24 ms with 50, 7.5 ms with 16).
      const open = await runLoad({ ...common(t), concurrency: settings.openConcurrency, durationSec: settings.durationSec, rps });
      if (open.rps < rps * 0.95) log(`${t.system} ${s.name}: the open loop fell behind (${open.rps} of ${rps} rps): its latencies understate queueing`);
      const lone = await runLoad({ ...common(t), connections: 1, concurrency: 1, durationSec: settings.loneDurationSec });
      const samples = rss.get(t)!.stop();
      const peak = samples.reduce((m, x) => (x.bytes > m.bytes ? x : m), samples[0]!);
      const checkAfter = await clients.get(t)!.verify(s.requests[0]!, t.expect(s));
      const all = rounds.get(t)!;
      const result: SystemRun = {
        ...runs.get(t)!,
        closed: best.load,
        roundsRps: all.map((x) => x.load.rps),
        open,
        lone,
        peakRssBytes: peak.bytes,
        processes: peak.processes,
        cpu: best.cpu,
        checkAfter,
        ...(idle ? { idleBefore: idle } : {}),
      };
      runs.set(t, checkAfter.ok ? result : { ...result, state: 'check-failed', reason: `after the load: ${describe(checkAfter)}` });
    } catch (err) {
      fail(t, err);
    }
  }
  for (const r of rss.values()) r.stop();
  for (const c of clients.values()) c.close();
  return targets.map((t) => runs.get(t)!);
}

/** One closed loop, with the cores the server, ghz and everything else took meanwhile. */
async function closedLoop(t: Target, common: Omit<Parameters<typeof runLoad>[0], 'durationSec'>): Promise<{ load: LoadResult; cpu: NonNullable<SystemRun['cpu']> }> {
  let ghzPid = -1;
  let ghzCpu = 0;
  const ghzTimer = setInterval(() => {
    if (ghzPid > 0) ghzCpu = Math.max(ghzCpu, treeCpuSeconds(ghzPid));
  }, 200);
  const cpu0 = { server: treeCpuSeconds(t.server.pid), busy: machineBusySeconds(), self: process.cpuUsage() };
  const t0 = process.hrtime.bigint();
  try {
    const load = await runLoad({ ...common, durationSec: settings.durationSec, onStart: (pid) => (ghzPid = pid) });
    const wall = Number(process.hrtime.bigint() - t0) / 1e9;
    const self = process.cpuUsage(cpu0.self);
    const serverCpu = treeCpuSeconds(t.server.pid) - cpu0.server;
    const busy = machineBusySeconds() - cpu0.busy;
    const selfCpu = (self.user + self.system) / 1e6;
    return {
      load,
      cpu: {
        serverCores: round(serverCpu / wall, 2),
        loadGeneratorCores: round(ghzCpu / wall, 2),
        otherCores: round(Math.max(0, busy - serverCpu - ghzCpu - selfCpu) / wall, 2),
      },
    };
  } finally {
    clearInterval(ghzTimer);
  }
}

// ---------------------------------------------------------------------------------------

async function prepareCredentials(only?: string[]): Promise<Prepared> {
  mkdirSync(out, { recursive: true });
  const main = await newApiKey(mcpAuthzCli);
  const unknown = await newApiKey(mcpAuthzCli);
  const entries = keyEntries(main.key);
  const keysFile = join(out, 'keys.yaml');
  const keysDocument = (extraKey?: string) => ({
    keys: extraKey ? [...entries, { ...entries[1]!, id: `reload-${Date.now()}`, sha256: sha256Hex(extraKey) }] : entries,
  });
  writeFileSync(keysFile, stringify(keysDocument()), { mode: 0o600 });
  const issuer = await startIssuer();
  const wantDistinct = !only || only.includes('oauth_distinct');
  log(wantDistinct ? `signing ${settings.distinctTokens} RS256 tokens` : 'signing one RS256 token');
  const token = await issuer.sign();
  const distinctTokens: string[] = [];
  for (let i = 0; wantDistinct && i < settings.distinctTokens; i++) distinctTokens.push(await issuer.sign());
  if (!wantDistinct) distinctTokens.push(token);
  const all = scenarios({ apiKey: main.key, unknownApiKey: unknown.key, token, distinctTokens });
  const list = only ? all.filter((s) => only.includes(s.name)) : all;
  const data = writeGhzData(list);
  return { list, data, keysFile, keysDocument, issuer, apiKey: main.key, keySource: main.source, keyEntries: entries };
}

async function startNull(): Promise<Target> {
  const port = await freePort();
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  log(`starting the null server (${settings.nullWorkers} processes) on 127.0.0.1:${port}`);
  const server = start('node', ['--import', 'tsx', join(root, 'bench', 'null-server.ts'), '--port', String(port), '--workers', String(settings.nullWorkers)], {
    cwd: root,
    logFile: join(out, 'null-server.log'),
    onStdout: (line) => line.startsWith('READY') && ready(),
  });
  try {
    await Promise.race([isReady, server.exited.then(() => Promise.reject(new Error('null server exited'))), timeout(60_000, 'null server did not start')]);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return { system: 'null', target: `127.0.0.1:${port}`, server, expect: () => NULL_EXPECT };
}

async function startMcpAuthzTarget(p: Prepared, bundle: string | undefined): Promise<Target> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const configFile = writeMcpAuthzConfig(p, grpcPort, httpPort, bundle);
  log(`starting mcp-authz (default workers) on 127.0.0.1:${grpcPort}`);
  const server = await startMcpAuthz(configFile, grpcPort, p.list[0]!.requests[0]!, opt['server-log'] ? join(out, 'mcp-authz.log') : undefined);
  return { system: 'mcp-authz', target: `127.0.0.1:${grpcPort}`, server, expect: (s) => s.expect };
}

/** opa-envoy-plugin, or where it cannot be installed opa-peer; or the rows saying why neither runs. */
async function startPeer(p: Prepared, available: boolean, reason: string | undefined): Promise<Target | SystemRun[]> {
  const dir = join(out, 'opa-envoy');
  mkdirSync(dir, { recursive: true });
  const dataFile = join(dir, 'data.json');
  writeFileSync(dataFile, JSON.stringify(opaEnvoyData(p)));
  const policy = join(root, 'bench', 'opa-envoy', 'policy.rego');
  let system: string;
  let server: Started;
  let grpcPort: number;
  if (available) {
    system = 'opa-envoy-plugin';
    grpcPort = await freePort();
    const httpPort = await freePort();
    log(`starting opa-envoy-plugin on 127.0.0.1:${grpcPort}`);
    server = start(
      tools.oep,
      [
        'run', '--server', '--log-level', 'error',
        '--addr', `127.0.0.1:${httpPort}`,
        '--config-file', join(root, 'bench', 'opa-envoy', 'config.yaml'),
        '--set', `plugins.envoy_ext_authz_grpc.addr=127.0.0.1:${grpcPort}`,
        '--set', 'plugins.envoy_ext_authz_grpc.path=envoy/authz/decision',
        '--set', 'decision_logs.console=false',
        policy, dataFile,
      ],
      { cwd: root, logFile: join(out, 'opa-envoy-plugin.log') },
    );
  } else if (existsSync(tools.opaPeer)) {
    // opa-envoy-plugin's Check path rebuilt on OPA's Go evaluator (bench/opa-peer/README.md).
    system = 'opa-peer';
    grpcPort = await freePort();
    log(`starting opa-peer on 127.0.0.1:${grpcPort}`);
    server = start(tools.opaPeer, ['--addr', `127.0.0.1:${grpcPort}`, '--policy', policy, '--data', dataFile], { cwd: root, logFile: join(out, 'opa-peer.log') });
  } else {
    // Neither can run here: still prove the policy answers each scenario as expected, by
    // evaluating it with the real opa on the input opa-envoy-plugin builds.
    const runs: SystemRun[] = [];
    for (const s of p.list) {
      const v = await evalOpaEnvoyPolicy(tools.opa, policy, dataFile, s);
      runs.push({
        system: 'opa-envoy-plugin',
        scenario: s.name,
        what: s.what,
        expected: s.expect,
        state: 'not-run',
        reason: `${reason}; policy checked with opa eval on the plugin's input shape: ${v.ok ? 'decides as expected' : describe(v)}`,
        checkBefore: v,
      });
    }
    return runs;
  }
  const target = `127.0.0.1:${grpcPort}`;
  const client = new CheckClient(target);
  let alive = true;
  void server.exited.then(() => (alive = false));
  try {
    await client.waitReady(p.list[0]!.requests[0]!, 60_000, () => alive);
  } catch (err) {
    await server.stop();
    throw err;
  } finally {
    client.close();
  }
  return { system, target, server, expect: (s) => s.expect };
}

function printSoak(command: string, r: Awaited<ReturnType<typeof runSoak>>): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  w('');
  w(`${command}: ${r.scenario}`);
  if (!('load' in r) || !r.load) {
    w(`  NOT RUN: ${'reason' in r ? r.reason : ''}`);
    return;
  }
  w(`  load: ${r.load.rps} rps for ${r.durationSec}s (${Math.round((100 * r.load.rps) / r.maxRps)}% of ${r.maxRps}); p50 ${r.load.latencyMs.p50} ms, p99 ${r.load.latencyMs.p99} ms, p99.9 ${r.load.latencyMs.p999} ms`);
  w(`  mcp-authz's own decision time (${r.serverLatency.series}, ${r.serverLatency.decisions} decisions): p50 ${r.serverLatency.p50Ms} ms, p90 ${r.serverLatency.p90Ms} ms, p99 ${r.serverLatency.p99Ms} ms, p99.9 ${r.serverLatency.p999Ms} ms`);
  w(`  RSS: ${r.rss.baselineMiB} MiB after warm-up -> ${r.rss.endMiB} MiB at the end (${r.rss.growthPct}%; lowest RSS ${r.rss.floorGrowthPct}%), peak ${r.rss.peakMiB} MiB (target < 10%)`);
  w(`  errors: ${r.errors}; wrongly decided or failed calls: ${r.failedCalls} of ${r.prober.sent} checked (targets 0 and 0)`);
  for (const e of r.events) w(`  at ${e.atSec}s ${e.what}: ${e.detail}`);
  w(`  ${r.passed ? 'PASSED' : 'FAILED'}`);
}

function timeout(ms: number, msg: string): Promise<never> {
  return new Promise((_, reject) => setTimeout(() => reject(new Error(msg)), ms).unref());
}

function machine() {
  const c = cpus();
  return {
    cpu: c[0]?.model ?? 'unknown',
    cores: c.length,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    node: process.version,
    kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
    loadAverageAtStart: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number),
  };
}

/** bench/results/<timestamp>.json; a throughput run is also bench/results/latest.json. */
function writeResults(result: { kind: string } & Record<string, unknown>): string {
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const stamp = new Date().toISOString().replace(/[:.]/g, '-');
  const file = join(dir, `${stamp}.json`);
  const text = JSON.stringify(result, null, 2) + '\n';
  writeFileSync(file, text);
  if (result.kind === 'throughput') writeFileSync(join(dir, 'latest.json'), text);
  return file;
}

async function main(): Promise<number> {
  const started = new Date();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const { oep } = await prepareTools();
  const { bundle, notes } = await buildProduct();

  if (opt.soak) {
    const p = await prepareCredentials([opt.scenario!]);
    try {
      const result = await runSoak({
        p, bundle, durationSec: parseDuration(opt.soak), scenario: opt.scenario!, settings, log,
        ...(opt['server-log'] ? { logFile: join(out, 'mcp-authz.log') } : {}),
        ...(opt.workers !== undefined ? { workers: Number(opt.workers) } : {}),
      });
      const file = writeResults({ kind: 'soak' as const, startedAt: started.toISOString(), command, machine: machine(), tools: { ghz: ghzVersion(tools.ghz) }, notes, keySource: p.keySource, ...result });
      printSoak(command, result);
      log(`results: ${file}`);
      return result.passed ? 0 : 1;
    } finally {
      await p.issuer.close();
    }
  }

  const only = opt.scenarios?.split(',').map((s) => s.trim());
  if (opt['in-process']) {
    const p = await prepareCredentials(only);
    try {
      const configFile = writeMcpAuthzConfig(p, await freePort(), await freePort(), bundle);
      const rows = await measureInProcess(p, configFile, Number(opt.calls), log);
      const file = writeResults({ kind: 'in-process', startedAt: started.toISOString(), command, machine: machine(), notes, keySource: p.keySource, scenarios: rows });
      printInProcess(command, rows);
      log(`results: ${file}`);
      return 0;
    } finally {
      await p.issuer.close();
    }
  }

  const systems = opt.systems!.split(',').map((s) => s.trim());
  const p = await prepareCredentials(only);
  const runs: SystemRun[] = [];
  const targets: Target[] = [];
  const notRun: SystemRun[] = [];
  try {
    // Every server runs for the whole benchmark, so each scenario's rounds interleave them.
    if (systems.includes('null')) targets.push(await startNull());
    if (systems.includes('mcp-authz')) targets.push(await startMcpAuthzTarget(p, bundle));
    if (systems.includes('opa-envoy-plugin')) {
      const peer = await startPeer(p, oep.available, oep.reason);
      if (Array.isArray(peer)) notRun.push(...peer);
      else targets.push(peer);
    }
    for (const s of p.list) runs.push(...(await measureScenario(s, targets, p.data.get(s.name)!)));
  } finally {
    await Promise.all(targets.map((t) => t.server.stop(10_000)));
    await p.issuer.close();
  }
  runs.push(...notRun);
  const result = {
    kind: 'throughput',
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    command,
    machine: machine(),
    settings: { ...settings, loadGenerator: 'ghz on the same machine', nullServerWorkers: settings.nullWorkers, mcpAuthzWorkers: 'default (serve without --workers)', maxRps: `median of ${settings.rounds} interleaved closed-loop rounds` },
    tools: { ghz: ghzVersion(tools.ghz), opaEnvoyPlugin: oep },
    keySource: p.keySource,
    notes,
    /** The most CPU other processes took during a closed loop: above ~0.25 cores the machine was not idle. */
    otherCoresMax: Math.max(0, ...runs.map((r) => r.cpu?.otherCores ?? 0)),
    runs,
    ratios: ratios(runs),
  };
  const file = writeResults(result);
  printTable(result);
  log(`results: ${file} (and bench/results/latest.json)`);
  const broken = runs.filter((r) => r.state === 'check-failed' || r.state === 'error');
  if (broken.length) log(`${broken.length} run(s) failed their own checks or errored: see the table`);
  return broken.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
