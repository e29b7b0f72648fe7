// npm run bench [-- options]: mcp-authz against opa-envoy-plugin and a null server per
// transport (grpc-js, bare node:http2, node:http), on loopback: max throughput with h2load
// (one thread), latency with ghz; or a soak of mcp-authz (--soak 30m: h2load at 80% of the max,
// reloads every 10 s, distinct tokens past the cache, RSS sampled); or mcp-authz's own
// µs per Check (--in-process). See docs/performance.md. Writes bench/results/<timestamp>.json
// and, for a throughput run, latest.json.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { authorizationService } from '../src/envoy/protos.js';
import { keyEntries, newApiKey, sha256Hex, startIssuer } from './lib/credentials.js';
import { readDecisionCounts, tally, type DecisionTally } from './lib/decision-counts.js';
import { ghzVersion, round, runLoad, type LoadResult } from './lib/ghz.js';
import {
  CHECK_PATH,
  GRPC_HEADERS,
  GRPC_TIMEOUT_MS,
  delimited,
  grpcFrame,
  h2loadVersion,
  runH2load,
  runLoadgen,
  type H2loadResult,
} from './lib/h2load.js';
import { printProfiles, profileScenarios } from './lib/cpu-profile.js';
import {
  closedLoop as extProcLoop,
  extProcScenarios,
  inProcess as extProcInProcess,
  printExtProc,
  grantOnPage,
  roundRatio as extProcRatio,
  withApprovals,
  type ExtProcRun,
  type LoopRound,
} from './lib/ext-proc.js';
import { measureInProcess, printInProcess, TRACING_MODES, type TracingMode } from './lib/in-process.js';
import { measureInterleaved, printInterleaved } from './lib/interleaved.js';
import { startMcpAuthz, writeMcpAuthzConfig, type Prepared } from './lib/mcp-authz.js';
import { opaEnvoyPluginBuild, startOpaEnvoyPlugin } from './lib/opa-envoy.js';
import { mcpAuthzCli, out, root, shippedBundle, tools } from './lib/paths.js';
import {
  freePort,
  loadAverage,
  machineBusySeconds,
  run,
  sampleRss,
  start,
  treeCpuSeconds,
  treeRss,
  waitIdle,
  type Started,
} from './lib/processes.js';
import { printTable, ratios, type Round, type SystemRun } from './lib/report.js';
import { scenarios, type HttpShape, type Scenario } from './lib/scenarios.js';
import { measureScale, printScale } from './lib/scale.js';
import { measureCheckCurves, printCheckCurves, scaleCurves } from './lib/scale-check.js';
import { measureShadow, printShadow } from './lib/shadow.js';
import { printFleet, runFleet } from './lib/fleet.js';
import { runSoak, SOAK_SCENARIOS } from './lib/soak.js';
import { CheckClient, describe, HttpCheckClient, type Verdict } from './lib/verify.js';

function parseDuration(s: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new Error(`bad duration "${s}" (e.g. 10s, 10m)`);
  const n = Number(m[1]);
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : m[2] === 'h' ? n * 3600 : n;
}

const SYSTEMS = ['null-grpc-js', 'null-http2', 'null-http1', 'mcp-authz', 'opa-envoy-plugin'] as const;
/** --transports: mcp-authz's pipeline behind each transport (bench/transports/), beside the nulls. */
const STUDY = [
  'null-grpc-js',
  'null-http2',
  'null-http1',
  'grpc-js',
  'connect',
  'lean-http2',
  'http-ext-authz',
] as const;
const STUDY_TRANSPORT: Record<string, { serve: string; ownNull: string; about: string }> = {
  'grpc-js': {
    serve: 'grpc-js',
    ownNull: 'null-grpc-js',
    about: "the product's grpc-js server (grpcServer: grpc-js, dist/grpc/grpc-js-server.js), one process",
  },
  connect: {
    serve: 'connect',
    ownNull: 'null-http2',
    about: '@connectrpc/connect-node, gRPC protocol on node:http2, one process',
  },
  'lean-http2': {
    serve: 'lean-http2',
    ownNull: 'null-http2',
    about: "the product's own gRPC server on node:http2 (grpcServer: lean, dist/grpc/h2-server.js), one process",
  },
  'http-ext-authz': {
    serve: 'http1',
    ownNull: 'null-http1',
    about: "Envoy's HTTP ext_authz shape on node:http (HTTP/1.1), one process",
  },
};

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: '5s' },
    rounds: { type: 'string', default: '3' },
    'lone-duration': { type: 'string', default: '3s' },
    warmup: { type: 'string', default: '2s' },
    'max-load': { type: 'string', default: 'h2load' },
    'distinct-load': { type: 'string', default: 'loadgen' },
    connections: { type: 'string', default: '4' },
    concurrency: { type: 'string', default: '48' },
    'h1-connections': { type: 'string', default: '48' },
    'open-concurrency': { type: 'string', default: '16' },
    'load-fraction': { type: 'string' },
    'reload-every': { type: 'string', default: '10s' },
    'token-rps': { type: 'string', default: '100' },
    systems: { type: 'string' },
    scenarios: { type: 'string' },
    'null-workers': { type: 'string' },
    'mcp-authz-workers': { type: 'string' },
    'distinct-tokens': { type: 'string', default: '3000' },
    soak: { type: 'string' },
    'in-process': { type: 'boolean', default: false },
    scale: { type: 'boolean', default: false },
    shadow: { type: 'boolean', default: false },
    fleet: { type: 'boolean', default: false },
    'scale-endpoints': { type: 'string', default: '10,1000,10000,100000' },
    'scale-keys': { type: 'string', default: '10000,100000,1000000' },
    'scale-pg-keys': { type: 'string', default: '10000,100000,1000000' },
    'scale-curves': { type: 'string', default: 'all' },
    'scale-keys-reload': { type: 'string', default: '1000000' },
    'ext-proc': { type: 'boolean', default: false },
    'receipt-key': { type: 'string', default: 'ed25519' },
    transports: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    'profile-duration': { type: 'string', default: '15s' },
    'profile-workers': { type: 'string', default: '1' },
    calls: { type: 'string', default: '20000' },
    tracing: { type: 'string', default: 'off' },
    interleave: { type: 'boolean', default: false },
    baseline: { type: 'string' },
    'block-rounds': { type: 'string', default: '15' },
    'block-calls': { type: 'string', default: '1000' },
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
  process.stdout.write(`npm run bench -- [--duration 5s] [--rounds 3] [--lone-duration 3s] [--warmup 2s]
  [--max-load h2load|ghz] [--distinct-load loadgen|ghz] [--connections 4] [--concurrency 48] [--h1-connections 48] [--open-concurrency 16]
  [--systems ${SYSTEMS.join(',')}] [--scenarios a,b]
  [--null-workers N] [--mcp-authz-workers N] [--distinct-tokens N] [--server-log] [--no-install] [--wait-idle 15s]
npm run bench -- --transports [--systems ${STUDY.join(',')}] [--scenarios apikey_tool_allow,invalid_key] [same load options]
npm run bench -- --profile [--scenarios apikey_tool_allow,invalid_key] [--profile-duration 15s] [--profile-workers 1]
npm run bench -- --soak 30m [--load-fraction 0.8] [--reload-every 10s] [--token-rps 100] [--distinct-tokens 3000] [--workers N]
npm run bench -- --scale [--scale-endpoints 10,1000,10000,100000] [--scale-keys 10000,100000,1000000] [--scale-pg-keys 10000,100000,1000000|none] [--scale-keys-reload 1000000|none]
  [--scale-curves all|none|"grants=1,10 list=10,500 issuers=1,50 tokens=1000,1000000 endpoints=10,1000"]
npm run bench -- --in-process [--calls 20000] [--scenarios a,b] [--tracing off|unsampled|sampled]
npm run bench -- --shadow [--calls 20000] [--rounds 3]
npm run bench -- --fleet [--server-log]
npm run bench -- --in-process --interleave [--baseline DIR] [--block-rounds 15] [--block-calls 1000] [--scenarios a,b]
npm run bench -- --ext-proc [--in-process] [--receipt-key ed25519|p256] [--duration 5s] [--rounds 3] [--warmup 2s] [--connections 4] [--concurrency 48] [--calls 20000] [--scenarios a,b]
`);
  process.exit(0);
}

const settings = {
  durationSec: parseDuration(opt.duration!),
  rounds: Math.max(1, Number(opt.rounds)),
  loneDurationSec: parseDuration(opt['lone-duration']!),
  warmupSec: parseDuration(opt.warmup!),
  maxLoad: opt['max-load'] === 'ghz' ? ('ghz' as const) : ('h2load' as const),
  /** The closed loops of a scenario of several requests (distinct tokens): bench/loadgen, or ghz. */
  distinctLoad: opt['distinct-load'] === 'ghz' ? ('ghz' as const) : ('loadgen' as const),
  connections: Number(opt.connections),
  concurrency: Number(opt.concurrency),
  h1Connections: Number(opt['h1-connections']),
  openConcurrency: Number(opt['open-concurrency']),
  // The open-loop latency runs go at half the max; a soak at 80% of it.
  loadFraction: Number(opt['load-fraction'] ?? (opt.soak ? 0.8 : 0.5)),
  // The transport study compares single processes; the benchmark, servers with a process per core.
  nullWorkers: Number(opt['null-workers'] ?? (opt.transports ? 1 : availableParallelism())),
  mcpAuthzWorkers: opt['mcp-authz-workers'] ? Number(opt['mcp-authz-workers']) : undefined,
  distinctTokens: Number(opt['distinct-tokens']),
  waitIdleSec: parseDuration(opt['wait-idle']!),
};
if (!['h2load', 'ghz'].includes(opt['max-load']!))
  throw new Error(`--max-load is h2load or ghz, not "${opt['max-load']}"`);
if (!['loadgen', 'ghz'].includes(opt['distinct-load']!))
  throw new Error(`--distinct-load is loadgen or ghz, not "${opt['distinct-load']}"`);

function log(msg: string): void {
  process.stderr.write(`bench: ${msg}\n`);
}

// ---------------------------------------------------------------------------------------

/** The load generators a mode drives: in-process and ext_proc runs none, a soak and a profile h2load. */
function toolsFor(systems: string[]): string[] {
  if (opt['in-process'] || opt['ext-proc'] || opt.scale || opt.shadow || opt.fleet) return [];
  if (opt.soak) return ['h2load'];
  if (opt.profile) return ['h2load', 'loadgen'];
  return ['ghz', 'h2load', 'loadgen', ...(systems.includes('opa-envoy-plugin') ? ['opa-envoy-plugin'] : [])];
}

/** Installs the load generators and the plugin the mode uses (scripts/install-tools.sh); a missing one stops the run. */
async function prepareTools(systems: string[]): Promise<void> {
  const script = join(root, 'scripts', 'install-tools.sh');
  const wanted = toolsFor(systems);
  if (!opt['no-install']) {
    for (const tool of wanted) {
      log(`installing ${tool} (scripts/install-tools.sh ${tool})`);
      const r = await run(script, [tool], { cwd: root, timeoutMs: 20 * 60_000 });
      if (r.code !== 0) {
        const why = r.stderr
          .split('\n')
          .filter((l) => l && !l.startsWith('go: downloading'))
          .slice(-6)
          .join('\n');
        throw new Error(`scripts/install-tools.sh ${tool} failed:\n${why}`);
      }
    }
  }
  if (wanted.includes('ghz') && !existsSync(tools.ghz))
    throw new Error(`ghz missing at ${tools.ghz} (scripts/install-tools.sh ghz)`);
  if (wanted.includes('loadgen') && !existsSync(tools.loadgen))
    throw new Error(`bench/loadgen missing at ${tools.loadgen} (scripts/install-tools.sh loadgen)`);
  if (wanted.includes('h2load') && h2loadVersion() === 'unknown')
    throw new Error('h2load is not on PATH (scripts/install-tools.sh h2load)');
  if (systems.includes('opa-envoy-plugin') && !existsSync(tools.oep)) {
    throw new Error(`opa-envoy-plugin missing at ${tools.oep} (scripts/install-tools.sh opa-envoy-plugin)`);
  }
}

async function buildProduct(): Promise<{ bundle: string | undefined; notes: string[] }> {
  const notes: string[] = [];
  log('building mcp-authz (npm run build)');
  const b = await run('npm', ['run', 'build'], { cwd: root, timeoutMs: 10 * 60_000 });
  if (b.code !== 0) throw new Error(`npm run build failed:\n${(b.stdout + b.stderr).trim().slice(-3000)}`);
  if (!existsSync(shippedBundle)) {
    log('building the policy bundle (npm run policy:build)');
    const p = await run('npm', ['run', 'policy:build'], { cwd: root, timeoutMs: 10 * 60_000 });
    if (p.code !== 0) notes.push(`npm run policy:build failed: ${(p.stdout + p.stderr).trim().slice(-500)}`);
  }
  if (!existsSync(shippedBundle))
    notes.push('no shipped policy bundle at policies/build/bundle.tar.gz: mcp-authz runs its fail-closed placeholder');
  return { bundle: existsSync(shippedBundle) ? shippedBundle : undefined, notes };
}

/**
 * Writes each scenario's requests for the load generators: for ghz the CheckRequests
 * serialized with the official protos (several: varint-length-prefixed, sent round-robin;
 * binary spares ghz a JSON-to-protobuf conversion per call); for h2load the first one in a
 * gRPC frame, and its HTTP body for the HTTP/1.1 shape.
 */
function writeLoadData(list: Scenario[]): Prepared['data'] {
  const dir = join(out, 'data');
  mkdirSync(dir, { recursive: true });
  const serialize = authorizationService().Check!.requestSerialize;
  const files: Prepared['data'] = new Map();
  for (const s of list) {
    const msgs = s.requests.map((r) => serialize(r));
    const ghz = join(dir, `${s.name}.bin`);
    writeFileSync(ghz, msgs.length === 1 ? msgs[0]! : delimited(msgs));
    const list = join(dir, `${s.name}.list`);
    writeFileSync(list, delimited(msgs));
    const grpc = join(dir, `${s.name}.grpc`);
    writeFileSync(grpc, grpcFrame(msgs[0]!));
    const http = join(dir, `${s.name}.body`);
    writeFileSync(http, s.http[0]!.body);
    files.set(s.name, { ghz, grpc, http, list });
  }
  return files;
}

/** A running server under test. */
interface Target {
  system: string;
  /** gRPC Check, or Envoy's HTTP ext_authz shape over HTTP/1.1. */
  transport: 'grpc' | 'http1';
  /** host:port */
  target: string;
  server: Started;
  /** What this server must answer for a scenario (a null server allows everything). */
  expect(s: Scenario): Scenario['expect'];
  /** mcp-authz's /metrics, to count its decisions under load. */
  metricsUrl?: string;
  /** How it runs (processes, build), for the results. */
  about: string;
  /** The null server of the same transport (the transport study's ratio). */
  ownNull?: string;
}

const NULL_EXPECT: Scenario['expect'] = { allow: true, status: 200 };

function median<T>(xs: T[], by: (x: T) => number): T {
  return [...xs].sort((a, b) => by(a) - by(b))[Math.floor((xs.length - 1) / 2)]!;
}

/** Checks one request's decision with the target's own protocol (grpc-js client, or HTTP/1.1). */
class Verifier {
  private readonly grpc?: CheckClient;
  private readonly http?: HttpCheckClient;
  constructor(private readonly t: Target) {
    if (t.transport === 'grpc') this.grpc = new CheckClient(t.target);
    else this.http = new HttpCheckClient(`http://${t.target}`);
  }
  verify(s: Scenario, i = 0): Promise<Verdict> {
    return this.grpc
      ? this.grpc.verify(s.requests[i]!, this.t.expect(s))
      : this.http!.verify(s.http[i]!, this.t.expect(s));
  }
  close(): void {
    this.grpc?.close();
    this.http?.close();
  }
}

/**
 * Samples answers while a load runs (one call every 100 ms, with the target's own protocol),
 * since h2load reads no gRPC trailers: a sample of the decisions made under load.
 */
function startProber(v: Verifier, s: Scenario): { stop(): Promise<Round['probes']> } {
  const probes: Round['probes'] = { sent: 0, wrong: 0, samples: [] };
  let on = true;
  const loop = (async () => {
    while (on) {
      const r = await v.verify(s, probes.sent % s.requests.length);
      probes.sent++;
      if (!r.ok) {
        probes.wrong++;
        if (probes.samples.length < 3) probes.samples.push(describe(r));
      }
      await new Promise((res) => setTimeout(res, 100));
    }
  })();
  return {
    async stop() {
      on = false;
      await loop;
      return probes;
    },
  };
}

/** h2load can send only one request body: a scenario of several requests (a token set) is driven by ghz. */
const useH2load = (s: Scenario) => settings.maxLoad === 'h2load' && s.requests.length === 1;

/** Closed loops log every answer's latency, to count those past Envoy's timeout (a grpc-timeout answer is HTTP 200 to h2load). */
function h2loadFor(
  t: Target,
  s: Scenario,
  durationSec: number,
  lone = false,
  logFile = join(out, `h2load-${t.system}-${s.name}.log`),
) {
  const files = prepared!.data.get(s.name)!;
  if (t.transport === 'http1') {
    const shape: HttpShape = s.http[0]!;
    return runH2load({
      url: `http://${t.target}${shape.path}`,
      bodyFile: files.http,
      headers: { ...shape.headers, host: shape.host },
      h1: true,
      connections: lone ? 1 : settings.h1Connections,
      streams: 1,
      durationSec,
      logFile,
      lateAfterMs: GRPC_TIMEOUT_MS,
    });
  }
  return runH2load({
    url: `http://${t.target}${CHECK_PATH}`,
    bodyFile: files.grpc,
    headers: GRPC_HEADERS,
    connections: lone ? 1 : settings.connections,
    streams: lone ? 1 : Math.max(1, Math.round(settings.concurrency / settings.connections)),
    durationSec,
    logFile,
    lateAfterMs: GRPC_TIMEOUT_MS,
  });
}

/** A closed loop of a scenario of several requests over gRPC, by bench/loadgen or ghz (--distinct-load). */
function severalFor(t: Target, s: Scenario, durationSec: number): Promise<H2loadResult | LoadResult> {
  if (settings.distinctLoad === 'ghz') return runLoad({ ...ghzFor(t, s), durationSec });
  return runLoadgen({
    bin: tools.loadgen,
    target: t.target,
    dataFile: prepared!.data.get(s.name)!.list,
    connections: settings.connections,
    streams: Math.max(1, Math.round(settings.concurrency / settings.connections)),
    durationSec,
    lateAfterMs: GRPC_TIMEOUT_MS,
  });
}

function ghzFor(t: Target, s: Scenario) {
  return {
    ghz: tools.ghz,
    target: t.target,
    dataFile: prepared!.data.get(s.name)!.ghz,
    connections: settings.connections,
    concurrency: settings.concurrency,
    outFile: join(out, `ghz-${t.system}-${s.name}.json`),
  };
}

/** One closed loop: its throughput, the cores the server, the load generator and everything else took, and the decisions made. */
async function closedLoop(t: Target, s: Scenario, v: Verifier): Promise<Round> {
  const counts0 = t.metricsUrl ? await readDecisionCounts(t.metricsUrl) : undefined;
  const cpu0 = { server: treeCpuSeconds(t.server.pid), busy: machineBusySeconds(), self: process.cpuUsage() };
  const load1 = loadAverage()[0];
  const t0 = process.hrtime.bigint();
  const prober = startProber(v, s);
  let load: H2loadResult | LoadResult;
  let probes!: Round['probes'];
  try {
    load = useH2load(s) ? await h2loadFor(t, s, settings.durationSec) : await severalFor(t, s, settings.durationSec);
  } finally {
    probes = await prober.stop();
  }
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const self = process.cpuUsage(cpu0.self);
  const serverCpu = treeCpuSeconds(t.server.pid) - cpu0.server;
  const busy = machineBusySeconds() - cpu0.busy;
  const lgCpu = load.loadGeneratorCpuSec ?? 0;
  let decisions: DecisionTally | undefined;
  if (counts0 && t.metricsUrl) decisions = tally(counts0, await readDecisionCounts(t.metricsUrl), t.expect(s));
  const answered = load.loadGenerator === 'ghz' ? load.count : load.done;
  return {
    loadGenerator: load.loadGenerator,
    rps: load.rps,
    serverCpuUsPerCall: round((serverCpu / Math.max(1, answered + probes.sent)) * 1e6, 1),
    load,
    loadAverage1: load1,
    cores: {
      server: round(serverCpu / wall, 2),
      loadGenerator: round(lgCpu / load.durationSec, 2),
      other: round(Math.max(0, busy - serverCpu - lgCpu - (self.user + self.system) / 1e6) / wall, 2),
    },
    probes,
    ...(decisions ? { decisions } : {}),
  };
}

/** Errors a round's load generator saw: gRPC errors (ghz), or failed/errored/timed-out requests and unexpected statuses (h2load). */
function roundErrors(r: Round, t: Target, s: Scenario): number {
  if (r.load.loadGenerator === 'ghz') return r.load.errors;
  const l = r.load;
  // loadgen reads the gRPC trailers and the CheckResponse: a non-OK call, or an allow expected and not given.
  if (l.loadGenerator === 'loadgen') {
    const notAllowed = t.expect(s).allow
      ? Object.entries(l.checkCodes ?? {}).reduce((n, [k, c]) => n + (k === '0' ? 0 : c), 0)
      : 0;
    return l.errored + l.timeout + l.failed + notAllowed;
  }
  // Over HTTP/2 every gRPC answer is HTTP 200; over HTTP/1.1 a deny is its own status.
  const expectedStatus = t.transport === 'grpc' || t.expect(s).allow ? '2xx' : `${String(t.expect(s).status)[0]}xx`;
  const unexpected = Object.entries(l.statusCodes).reduce((n, [k, c]) => n + (k === expectedStatus ? 0 : c), 0);
  return l.errored + l.timeout + unexpected;
}

/** A scenario's runs so far, the servers still in it, and their verifiers. */
interface ScenarioState {
  s: Scenario;
  runs: Map<Target, SystemRun>;
  verifiers: Map<Target, Verifier>;
  live: Target[];
}

/**
 * One scenario on every server: each must decide the scenario's requests right first; then
 * `rounds` closed loops per server, interleaved (round r starts with server r), so a drift
 * in the machine's speed during the run touches every server alike; the median round is the
 * server's max. Then (gRPC) an open loop at a fraction of that max with ghz (latency under
 * load), and a lone call at a time (latency without queueing).
 */
async function measureScenario(s: Scenario, targets: Target[]): Promise<SystemRun[]> {
  const st = await verifyBefore(s, targets);
  const idle = settings.waitIdleSec > 0 ? await waitIdle(settings.waitIdleSec) : undefined;
  if (idle && !idle.idle)
    log(`${s.name}: machine still busy (${idle.busyCores} cores) after ${idle.waitedSec}s: measuring anyway`);
  const loadAtStart = loadAverage();
  log(`${s.name}: load average ${loadAtStart.join(' ')}`);
  const rss = new Map(st.live.map((t) => [t, sampleRss(t.server.pid, 250)]));
  await warmUp(st);
  const rounds = await closedRounds(st);
  for (const t of [...st.live]) {
    const all = rounds.get(t)!;
    if (all.length === 0) {
      st.runs.set(t, {
        ...st.runs.get(t)!,
        state: 'not-run',
        reason: 'ghz speaks gRPC only, and h2load sends one request body: a token set over HTTP/1.1 is not measured',
      });
      rss.get(t)!.stop();
      continue;
    }
    try {
      st.runs.set(t, await finishRun(st, t, all, rss.get(t)!, { loadAtStart, ...(idle ? { idle } : {}) }));
    } catch (err) {
      failRun(st, t, err);
    }
  }
  for (const r of rss.values()) r.stop();
  for (const v of st.verifiers.values()) v.close();
  return targets.map((t) => st.runs.get(t)!);
}

/** Every distinct request of the scenario (first and last of a token set) must decide right before any load. */
async function verifyBefore(s: Scenario, targets: Target[]): Promise<ScenarioState> {
  const st: ScenarioState = { s, runs: new Map(), verifiers: new Map(), live: [] };
  for (const t of targets) {
    const expected = t.expect(s);
    const what = t.system.startsWith('null') ? `null server on ${s.name}'s requests (ceiling)` : s.what;
    const base: SystemRun = {
      system: t.system,
      transport: t.transport,
      scenario: s.name,
      what,
      expected,
      state: 'measured',
    };
    st.runs.set(t, base);
    const v = new Verifier(t);
    st.verifiers.set(t, v);
    const probes = s.requests.length > 1 ? [0, s.requests.length - 1] : [0];
    try {
      for (const i of probes) {
        base.checkBefore = await v.verify(s, i);
        if (!base.checkBefore.ok) break;
      }
      if (base.checkBefore?.ok) st.live.push(t);
      else st.runs.set(t, { ...base, state: 'check-failed', reason: describe(base.checkBefore!) });
    } catch (err) {
      st.runs.set(t, { ...base, state: 'error', reason: (err as Error).message.slice(0, 2000) });
    }
  }
  return st;
}

/** A server that errored leaves the scenario, with the reason in its run. */
function failRun(st: ScenarioState, t: Target, err: unknown): void {
  st.runs.set(t, { ...st.runs.get(t)!, state: 'error', reason: (err as Error).message.slice(0, 2000) });
  if (st.live.includes(t)) st.live.splice(st.live.indexOf(t), 1);
}

async function warmUp(st: ScenarioState): Promise<void> {
  const { s } = st;
  for (const t of [...st.live]) {
    log(`${t.system} ${s.name}: warm-up ${settings.warmupSec}s`);
    try {
      if (useH2load(s)) await h2loadFor(t, s, settings.warmupSec);
      else if (t.transport === 'grpc') await severalFor(t, s, settings.warmupSec);
    } catch (err) {
      failRun(st, t, err);
    }
  }
}

/** `rounds` closed loops per server, round r starting with the r-th server. */
async function closedRounds(st: ScenarioState): Promise<Map<Target, Round[]>> {
  const { s, live } = st;
  const rounds = new Map<Target, Round[]>(live.map((t) => [t, []]));
  for (let r = 0; r < settings.rounds; r++) {
    const order = live.map((_, i) => live[(i + r) % live.length]!);
    for (const t of order) {
      if (t.transport === 'http1' && !useH2load(s)) continue; // ghz speaks gRPC only
      log(`${t.system} ${s.name}: closed loop ${settings.durationSec}s (round ${r + 1} of ${settings.rounds})`);
      try {
        rounds.get(t)!.push(await closedLoop(t, s, st.verifiers.get(t)!));
      } catch (err) {
        failRun(st, t, err);
      }
    }
  }
  return rounds;
}

interface Latencies {
  open?: LoadResult;
  lone?: LoadResult | H2loadResult;
  loneH2load?: H2loadResult;
}

/** Latency loops after the closed rounds: (gRPC) an open loop at a fraction of the max and a lone call with ghz; a lone call with h2load. */
async function latencyLoops(t: Target, s: Scenario, maxRps: number): Promise<Latencies> {
  const rps = Math.max(1, Math.floor(maxRps * settings.loadFraction));
  let open: LoadResult | undefined;
  let lone: LoadResult | H2loadResult | undefined;
  if (t.transport === 'grpc') {
    log(
      `${t.system} ${s.name}: open loop at ${rps} rps (${settings.loadFraction * 100}% of ${maxRps}) for ${settings.durationSec}s; one call at a time for ${settings.loneDurationSec}s`,
    );
    // Fewer workers than the closed loop: at a fixed rate, extra workers only add client-side
    // scheduling delay to the tail (null server at 5k rps: p99 24 ms with 50, 7.5 ms with 16).
    open = await runLoad({
      ...ghzFor(t, s),
      concurrency: settings.openConcurrency,
      durationSec: settings.durationSec,
      rps,
    });
    if (open.rps < rps * 0.95)
      log(
        `${t.system} ${s.name}: the open loop fell behind (${open.rps} of ${rps} rps): its latencies understate queueing`,
      );
    lone = await runLoad({ ...ghzFor(t, s), connections: 1, concurrency: 1, durationSec: settings.loneDurationSec });
  } else {
    log(
      `${t.system} ${s.name}: one call at a time for ${settings.loneDurationSec}s (h2load --h1; no open loop: ghz speaks gRPC only)`,
    );
  }
  // The same lone call with h2load, the only client of every transport: a latency floor without ghz's own cost.
  const loneH2load = useH2load(s) ? await h2loadFor(t, s, settings.loneDurationSec, true) : undefined;
  lone ??= loneH2load;
  return { ...(open ? { open } : {}), ...(lone ? { lone } : {}), ...(loneH2load ? { loneH2load } : {}) };
}

/** A server's run: its median round, latency loops, memory, and the check after the load. */
async function finishRun(
  st: ScenarioState,
  t: Target,
  all: Round[],
  rss: ReturnType<typeof sampleRss>,
  at: { loadAtStart: ReturnType<typeof loadAverage>; idle?: Awaited<ReturnType<typeof waitIdle>> },
): Promise<SystemRun> {
  const { s } = st;
  const best = median(all, (x) => x.rps);
  const lat = await latencyLoops(t, s, best.rps);
  const samples = rss.stop();
  const peak = samples.reduce((m, x) => (x.bytes > m.bytes ? x : m), samples[0]!);
  const checkAfter = await st.verifiers.get(t)!.verify(s);
  const loneErrors = lat.lone?.loadGenerator === 'ghz' ? lat.lone.errors : 0;
  const errors = all.reduce((n, r) => n + roundErrors(r, t, s), 0) + (lat.open?.errors ?? 0) + loneErrors;
  const otherDecisions = (r: Round) => Object.values(r.decisions?.other ?? {}).reduce((a, b) => a + b, 0);
  const wrong = all.reduce((n, r) => n + r.probes.wrong + otherDecisions(r), 0);
  const late = all.reduce((n, r) => n + (r.load.loadGenerator !== 'ghz' ? (r.load.late ?? 0) : 0), 0);
  const result: SystemRun = {
    ...st.runs.get(t)!,
    about: t.about,
    ...(t.ownNull ? { ownNull: t.ownNull } : {}),
    closed: best.load,
    maxRps: best.rps,
    rounds: all,
    roundsRps: all.map((x) => x.rps),
    ...lat,
    peakRssBytes: peak.bytes,
    peakOwnBytes: Math.max(...samples.map((x) => x.ownBytes)),
    rssAfterBytes: treeRss(t.server.pid).bytes,
    processes: peak.processes,
    cores: best.cores,
    cpuUsPerCall: median(all, (x) => x.serverCpuUsPerCall).serverCpuUsPerCall,
    loadAverageAtStart: at.loadAtStart,
    errors,
    wrongDecisions: wrong,
    late,
    checkAfter,
    ...(at.idle ? { idleBefore: at.idle } : {}),
  };
  const bad = !checkAfter.ok
    ? `after the load: ${describe(checkAfter)}`
    : wrong > 0
      ? `${wrong} answer(s) under load were not the expected decision`
      : undefined;
  return bad ? { ...result, state: 'check-failed', reason: bad } : result;
}

// ---------------------------------------------------------------------------------------

let prepared: Prepared | undefined;

async function prepareCredentials(only?: string[]): Promise<Prepared> {
  mkdirSync(out, { recursive: true });
  const main = await newApiKey(mcpAuthzCli);
  const unknown = await newApiKey(mcpAuthzCli);
  const entries = keyEntries(main.key);
  const keysFile = join(out, 'keys.yaml');
  const keysDocument = (extraKey?: string) => ({
    keys: extraKey
      ? [...entries, { ...entries[1]!, id: `reload-${Date.now()}`, sha256: sha256Hex(extraKey) }]
      : entries,
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
  const list = only ? all.filter((s) => only.includes(s.name)) : all.filter((s) => !s.optIn);
  const unknownNames = (only ?? []).filter((n) => !all.some((s) => s.name === n));
  if (unknownNames.length)
    throw new Error(`unknown scenario(s): ${unknownNames.join(', ')} (known: ${all.map((s) => s.name).join(', ')})`);
  const data = writeLoadData(list);
  prepared = {
    list,
    data,
    keysFile,
    keysDocument,
    issuer,
    apiKey: main.key,
    keySource: main.source,
    keyEntries: entries,
  };
  return prepared;
}

async function startNull(transport: 'grpc-js' | 'http2' | 'http1'): Promise<Target> {
  const port = await freePort();
  let ready!: () => void;
  const isReady = new Promise<void>((r) => (ready = r));
  const system = `null-${transport}`;
  log(`starting ${system} (${settings.nullWorkers} processes) on 127.0.0.1:${port}`);
  const server = start(
    'node',
    [
      '--import',
      'tsx',
      join(root, 'bench', 'null-server.ts'),
      '--port',
      String(port),
      '--transport',
      transport,
      '--workers',
      String(settings.nullWorkers),
    ],
    {
      cwd: root,
      logFile: join(out, `${system}.log`),
      onStdout: (line) => line.startsWith('READY') && ready(),
    },
  );
  try {
    await Promise.race([
      isReady,
      server.exited.then(() => Promise.reject(new Error(`${system} exited`))),
      timeout(60_000, `${system} did not start`),
    ]);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return {
    system,
    transport: transport === 'http1' ? 'http1' : 'grpc',
    target: `127.0.0.1:${port}`,
    server,
    expect: () => NULL_EXPECT,
    about: `bench/null-server.ts --transport ${transport}, ${settings.nullWorkers} process(es)`,
  };
}

async function startMcpAuthzTarget(p: Prepared, bundle: string | undefined): Promise<Target> {
  const [grpcPort, httpPort] = [await freePort(), await freePort()];
  const configFile = writeMcpAuthzConfig(p, grpcPort, httpPort, bundle);
  const workers = settings.mcpAuthzWorkers;
  log(`starting mcp-authz (${workers ? `--workers ${workers}` : 'default workers'}) on 127.0.0.1:${grpcPort}`);
  const server = await startMcpAuthz(
    configFile,
    grpcPort,
    p.list[0]!.requests[0]!,
    opt['server-log'] ? join(out, 'mcp-authz.log') : undefined,
    workers,
  );
  return {
    system: 'mcp-authz',
    transport: 'grpc',
    target: `127.0.0.1:${grpcPort}`,
    server,
    expect: (s) => s.expect,
    metricsUrl: `http://127.0.0.1:${httpPort}/metrics`,
    about: `mcp-authz serve ${workers ? `--workers ${workers}` : '(default workers: one per core)'}`,
  };
}

/** One of the transport study's servers: the real pipeline behind one transport, one process. */
async function startTransport(system: string, configFile: string): Promise<Target> {
  const t = STUDY_TRANSPORT[system]!;
  // Port 0: the server binds what the kernel picks and says which (READY <port> <metrics port>).
  let ready!: (ports: [number, number]) => void;
  const isReady = new Promise<[number, number]>((r) => (ready = r));
  log(`starting ${system} (bench/transports/serve.ts --transport ${t.serve}) on loopback`);
  const server = start(
    'node',
    [
      '--import',
      'tsx',
      join(root, 'bench', 'transports', 'serve.ts'),
      '--transport',
      t.serve,
      '--config',
      configFile,
      '--port',
      '0',
      '--metrics-port',
      '0',
    ],
    {
      cwd: root,
      env: { ...process.env, NODE_ENV: 'production' },
      onStdout: (line) => {
        const m = /^READY (\d+) (\d+)$/.exec(line);
        if (m) ready([Number(m[1]), Number(m[2])]);
      },
    },
  );
  let port: number;
  let metricsPort: number;
  try {
    [port, metricsPort] = await Promise.race([
      isReady,
      server.exited.then(() => Promise.reject(new Error(`${system} exited`))),
      timeout(60_000, `${system} did not start`),
    ]);
  } catch (err) {
    await server.stop();
    throw err;
  }
  return {
    system,
    transport: t.serve === 'http1' ? 'http1' : 'grpc',
    target: `127.0.0.1:${port}`,
    server,
    expect: (s) => s.expect,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    about: t.about,
    ownNull: t.ownNull,
  };
}

async function startPeer(p: Prepared, build: string): Promise<Target> {
  log('starting opa-envoy-plugin on loopback');
  const { server, target } = await startOpaEnvoyPlugin(p, p.list[0]!.requests[0]!);
  return { system: 'opa-envoy-plugin', transport: 'grpc', target, server, expect: (s) => s.expect, about: build };
}

function printSoak(command: string, r: Awaited<ReturnType<typeof runSoak>>): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  w('');
  w(`${command}:`);
  if (!('load' in r) || !r.load) {
    w(`  NOT RUN: ${'reason' in r ? r.reason : ''}`);
    return;
  }
  w(
    `  load: h2load ${r.load.rps} rps (${Math.round((100 * r.load.rps) / r.maxRps)}% of the ${r.maxRps} rps measured) for ${r.durationSec}s: ${r.load.done} calls, ${r.load.failed + r.load.errored + r.load.timeout} failed; tokens ${r.tokenStream.sent} calls over ${r.tokenStream.distinctTokens} distinct tokens (cache ${r.tokenStream.tokenCacheSize})`,
  );
  w(
    `  checked decisions: prober ${r.prober.right}/${r.prober.sent} right, token stream ${r.tokenStream.right}/${r.tokenStream.sent} right; service counted ${JSON.stringify(r.decisions.counted)}, unexpected ${JSON.stringify(r.decisions.other)}`,
  );
  w(`  reloads: ${r.reloads.ticks} ticks every ${r.reloads.everySec}s; ${JSON.stringify(r.reloads.counters)}`);
  w(
    `  RSS (MiB): start ${r.rss.startMiB}, after warm-up ${r.rss.baselineMiB}, peak ${r.rss.peakMiB}, end ${r.rss.endMiB} (last ${r.rss.lastMiB}): ${r.rss.growthPct}% (lowest RSS ${r.rss.floorGrowthPct}%; target < 10%)`,
  );
  w(
    `  CPU: server ${r.cpu.serverCores} cores, machine ${r.cpu.machineCores} cores busy; load average (1 min) ${r.loadAverage1m.min}-${r.loadAverage1m.max}, median ${r.loadAverage1m.median}`,
  );
  for (const [k, v] of Object.entries(r.checks)) w(`  ${v ? 'ok  ' : 'FAIL'} ${k}`);
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

/** What every mode of a run shares. */
interface RunContext {
  command: string;
  started: Date;
  bundle: string | undefined;
  notes: string[];
  /** --scenarios, or the mode's default list; undefined: all. */
  only: string[] | undefined;
}

async function main(): Promise<number> {
  const started = new Date();
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  const systems = selectedSystems();
  await prepareTools(systems);
  const { bundle, notes } = await buildProduct();
  const defaultScenarios = opt.transports || opt.profile ? 'apikey_tool_allow,invalid_key' : undefined;
  const only = (opt.scenarios ?? defaultScenarios)?.split(',').map((s) => s.trim());
  const ctx: RunContext = { command, started, bundle, notes, only };
  if (opt.scale) return scale(ctx);
  if (opt.shadow) return shadowCost(ctx);
  if (opt.fleet) return fleet(ctx);
  if (opt.soak) return soak(ctx);
  if (opt['ext-proc']) return extProc(ctx);
  if (opt.profile) return profile(ctx);
  if (opt['in-process'] && opt.interleave) return inProcessInterleaved(ctx);
  if (opt['in-process']) return inProcess(ctx);
  return throughput(ctx, systems);
}

/** --systems, checked against the servers this mode knows; none for the modes that run mcp-authz alone. */
function selectedSystems(): string[] {
  const known: readonly string[] = opt.transports ? STUDY : SYSTEMS;
  if (opt.scale || opt.shadow || opt.fleet || opt['in-process'] || opt.soak || opt.profile || opt['ext-proc'])
    return [];
  const systems = (opt.systems ?? known.join(',')).split(',').map((s) => s.trim());
  const unknownSystems = systems.filter((s) => !known.includes(s));
  if (unknownSystems.length) {
    const where = opt.transports ? ' with --transports' : '';
    throw new Error(`unknown system(s): ${unknownSystems.join(', ')} (known${where}: ${known.join(', ')})`);
  }
  return systems;
}

/** Credentials and a token issuer for the run, closed whatever happens. */
async function withCredentials<T>(only: string[] | undefined, fn: (p: Prepared) => Promise<T>): Promise<T> {
  const p = await prepareCredentials(only);
  try {
    return await fn(p);
  } finally {
    await p.issuer.close();
  }
}

/** The fields every results file starts with. */
function header(kind: string, ctx: RunContext, finished = true) {
  return {
    kind,
    startedAt: ctx.started.toISOString(),
    ...(finished ? { finishedAt: new Date().toISOString() } : {}),
    command: ctx.command,
    machine: machine(),
  };
}

/** How the costs of endpoint choice, key lookup and keys loading grow with the tenant count. */
async function scale(ctx: RunContext): Promise<number> {
  const counts = (s: string) => s.split(',').map((x) => Number(x.trim()));
  const checkCurves = await measureCheckCurves({
    ...scaleCurves(opt['scale-curves']!),
    bundle: ctx.bundle,
    log,
  });
  const result = await measureScale({
    endpointCounts: counts(opt['scale-endpoints']!),
    keyCounts: counts(opt['scale-keys']!),
    pgKeyCounts: opt['scale-pg-keys'] === 'none' ? [] : counts(opt['scale-pg-keys']!),
    keysReload: opt['scale-keys-reload'] === 'none' ? undefined : Number(opt['scale-keys-reload']),
    log,
  });
  const file = writeResults({
    ...header('scale', ctx),
    loadAverageAtEnd: loadAverage(),
    notes: ctx.notes,
    ...result,
    checkCurves,
  });
  printScale(ctx.command, result);
  printCheckCurves(checkCurves);
  log(`results: ${file}`);
  return result.keysLoad.every((l) => l.ok) ? 0 : 1;
}

/** N instances sharing one Redis and one PostgreSQL: revocation latency, quota and lockout accuracy, one instance's loss. */
async function fleet(ctx: RunContext): Promise<number> {
  if (!ctx.bundle) throw new Error('--fleet needs the shipped policy bundle (npm run policy:build)');
  const result = await runFleet({
    instances: 4,
    revocations: 20,
    rpsPerInstance: 100,
    inFlightPerInstance: 4,
    quota: 200,
    lockoutAttempts: 50,
    lossWindowSec: 10,
    ...(opt['server-log'] ? { serverLogDir: out } : {}),
    log,
  });
  const file = writeResults({ ...header('fleet', ctx), notes: ctx.notes, ...result });
  printFleet(ctx.command, result);
  log(`results: ${file}`);
  return result.passed ? 0 : 1;
}

/** What a shadow policy costs per Check: on and off in alternating rounds, the Check path and the background apart. */
async function shadowCost(ctx: RunContext): Promise<number> {
  if (!ctx.bundle) throw new Error('--shadow needs the shipped policy bundle (npm run policy:build)');
  const result = await measureShadow({
    bundle: ctx.bundle,
    calls: Number(opt.calls),
    rounds: Number(opt.rounds),
    log,
  });
  const file = writeResults({ ...header('shadow', ctx), loadAverageAtEnd: loadAverage(), notes: ctx.notes, ...result });
  printShadow(ctx.command, result);
  log(`results: ${file}`);
  return 0;
}

function soak(ctx: RunContext): Promise<number> {
  return withCredentials(SOAK_SCENARIOS, async (p) => {
    const result = await runSoak({
      p,
      bundle: ctx.bundle,
      durationSec: parseDuration(opt.soak!),
      settings,
      log,
      reloadEverySec: parseDuration(opt['reload-every']!),
      tokenRps: Number(opt['token-rps']),
      ...(opt['server-log'] ? { logFile: join(out, 'mcp-authz.log') } : {}),
      ...(opt.workers !== undefined ? { workers: Number(opt.workers) } : {}),
    });
    const tools = { h2load: h2loadVersion() };
    const file = writeResults({ ...header('soak', ctx), tools, notes: ctx.notes, keySource: p.keySource, ...result });
    printSoak(ctx.command, result);
    log(`results: ${file}`);
    return result.passed ? 0 : 1;
  });
}

function profile(ctx: RunContext): Promise<number> {
  return withCredentials(ctx.only, async (p) => {
    const durationSec = parseDuration(opt['profile-duration']!);
    const streams = Math.max(1, Math.round(settings.concurrency / settings.connections));
    const workers = Math.max(1, Number(opt['profile-workers']));
    const base = { warmupSec: settings.warmupSec, connections: settings.connections };
    const rows = await profileScenarios(p, ctx.bundle, { ...base, durationSec, streams, workers, log });
    const file = writeResults({ ...header('profile', ctx, false), notes: ctx.notes, scenarios: rows });
    printProfiles(ctx.command, rows);
    log(`results: ${file}`);
    return 0;
  });
}

function inProcessInterleaved(ctx: RunContext): Promise<number> {
  return withCredentials(ctx.only, async (p) => {
    const configFile = writeMcpAuthzConfig(p, await freePort(), await freePort(), ctx.bundle);
    const blocks = { rounds: Number(opt['block-rounds']), callsPerBlock: Number(opt['block-calls']) };
    const rows = await measureInterleaved(
      p,
      configFile,
      { ...blocks, ...(opt.baseline ? { baseline: opt.baseline } : {}) },
      log,
    );
    const loadAverageAtEnd = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number);
    const file = writeResults({
      ...header('in-process-interleaved', ctx),
      loadAverageAtEnd,
      notes: ctx.notes,
      keySource: p.keySource,
      rows,
    });
    printInterleaved(ctx.command, rows);
    log(`results: ${file}`);
    return 0;
  });
}

function inProcess(ctx: RunContext): Promise<number> {
  return withCredentials(ctx.only, async (p) => {
    const configFile = writeMcpAuthzConfig(p, await freePort(), await freePort(), ctx.bundle);
    const tracing = opt.tracing as TracingMode;
    if (!TRACING_MODES.includes(tracing))
      throw new Error(`--tracing is one of ${TRACING_MODES.join(', ')}, not "${opt.tracing}"`);
    const rows = await measureInProcess(p, configFile, Number(opt.calls), log, tracing);
    const file = writeResults({
      ...header('in-process', ctx, false),
      notes: ctx.notes,
      keySource: p.keySource,
      scenarios: rows,
    });
    printInProcess(ctx.command, rows);
    log(`results: ${file}`);
    return 0;
  });
}

/** Every server runs for the whole benchmark, so each scenario's rounds interleave them. */
async function startTargets(
  p: Prepared,
  systems: string[],
  bundle: string | undefined,
  peerBuild?: string,
): Promise<Target[]> {
  const targets: Target[] = [];
  for (const transport of ['grpc-js', 'http2', 'http1'] as const) {
    if (systems.includes(`null-${transport}`)) targets.push(await startNull(transport));
  }
  if (systems.includes('mcp-authz')) targets.push(await startMcpAuthzTarget(p, bundle));
  if (opt.transports) {
    const configFile = writeMcpAuthzConfig(p, await freePort(), await freePort(), bundle);
    for (const system of systems.filter((x) => STUDY_TRANSPORT[x]))
      targets.push(await startTransport(system, configFile));
  }
  if (peerBuild) targets.push(await startPeer(p, peerBuild));
  return targets;
}

/** The throughput run (and --transports): every scenario on every server. */
async function throughput(ctx: RunContext, systems: string[]): Promise<number> {
  const peer = systems.includes('opa-envoy-plugin') ? await opaEnvoyPluginBuild() : undefined;
  const runs: SystemRun[] = [];
  let targets: Target[] = [];
  const keySource = await withCredentials(ctx.only, async (p) => {
    try {
      targets = await startTargets(p, systems, ctx.bundle, peer ? `${peer.build} (${peer.version})` : undefined);
      for (const s of p.list) runs.push(...(await measureScenario(s, targets)));
    } finally {
      await Promise.all(targets.map((t) => t.server.stop(10_000)));
    }
    return p.keySource;
  });
  for (const r of runs) {
    const own = r.ownNull ? runs.find((x) => x.system === r.ownNull && x.scenario === r.scenario) : undefined;
    if (r.maxRps && own?.maxRps) r.vsOwnNull = round(r.maxRps / own.maxRps, 3);
  }
  const result = throughputResult(ctx, runs, targets, keySource, peer);
  const file = writeResults(result);
  printTable(result);
  log(`results: ${file}${result.kind === 'throughput' ? ' (and bench/results/latest.json)' : ''}`);
  const broken = runs.filter((r) => r.state === 'check-failed' || r.state === 'error');
  if (broken.length) log(`${broken.length} run(s) failed their own checks or errored: see the table`);
  return broken.length ? 1 : 0;
}

function throughputResult(
  ctx: RunContext,
  runs: SystemRun[],
  targets: Target[],
  keySource: Prepared['keySource'],
  peer: Awaited<ReturnType<typeof opaEnvoyPluginBuild>> | undefined,
) {
  const maxLoadGenerator =
    settings.maxLoad === 'h2load'
      ? `h2load, one thread, on the same machine (${settings.distinctLoad === 'ghz' ? 'ghz' : 'bench/loadgen, one thread,'} for scenarios of several requests)`
      : 'ghz on the same machine';
  return {
    ...header(opt.transports ? 'transports' : 'throughput', ctx),
    settings: {
      ...settings,
      maxRps: `median of ${settings.rounds} interleaved closed-loop rounds`,
      maxLoadGenerator,
      latencyLoadGenerator: 'ghz (open loop and lone calls; h2load for lone calls over HTTP/1.1)',
    },
    systems: Object.fromEntries(targets.map((t) => [t.system, t.about])),
    tools: {
      ghz: ghzVersion(tools.ghz),
      h2load: h2loadVersion(),
      loadgen: 'bench/loadgen (golang.org/x/net/http2 framer)',
      ...(peer ? { opaEnvoyPlugin: peer } : {}),
    },
    keySource,
    notes: ctx.notes,
    /** The most CPU other processes took during a closed loop: above ~0.25 cores the machine was not idle. */
    otherCoresMax: Math.max(0, ...runs.map((r) => r.cores?.other ?? 0)),
    runs,
    ratios: ratios(runs),
  };
}

/**
 * --ext-proc: the ext_proc service against Check on the same requests, one mcp-authz worker
 * (the real CLI), a grpc-js client loop here (bench/lib/ext-proc.ts), interleaved rounds;
 * then the same exchanges in-process.
 */
async function extProc(ctx: RunContext): Promise<number> {
  return withCredentials(['apikey_tool_allow'], async (p) => {
    const list = extProcList(p);
    const grpcPort = await freePort();
    const httpPort = await freePort();
    const configFile = writeMcpAuthzConfig(p, grpcPort, httpPort, ctx.bundle);
    // Approvals too (one worker, as here): the approval scenarios' endpoints and page.
    const approvals = withApprovals(configFile, httpPort, opt['receipt-key'] === 'p256' ? 'p256' : 'ed25519');
    if (opt['in-process']) {
      // The exchanges in this process only: the quick figure to profile and optimize against.
      const rows = await extProcInProcess(configFile, list, Number(opt.calls), log);
      for (const r of rows)
        process.stdout.write(
          `${r.scenario.padEnd(28)} ${r.totalUs.toFixed(1).padStart(8)} µs ${r.cpuUs.toFixed(1).padStart(8)} µs CPU\n`,
        );
      return 0;
    }
    log('starting mcp-authz (one worker)');
    const serverLog = opt['server-log'] ? join(out, 'mcp-authz.log') : undefined;
    const server = await startMcpAuthz(configFile, grpcPort, p.list[0]!.requests[0]!, serverLog, 1);
    let runs: ExtProcRun[];
    try {
      const grant = (id: string) => grantOnPage(approvals.publicUrl, approvals.sessionKey, id);
      runs = await extProcRounds(list, { target: `127.0.0.1:${grpcPort}`, server, grant }, ctx.notes);
    } finally {
      await server.stop(10_000);
    }
    const inProc = await extProcInProcess(configFile, list, Number(opt.calls), log);
    const loadGenerator =
      "grpc-js client loop in the benchmark process (h2load and ghz cannot play Envoy's side of a Process stream)";
    const file = writeResults({
      ...header('ext-proc', ctx),
      settings: { ...settings, loadGenerator, mcpAuthzWorkers: 1, receiptKey: opt['receipt-key'] },
      keySource: p.keySource,
      notes: ctx.notes,
      otherCoresMax: Math.max(0, ...runs.flatMap((r) => r.rounds.map((x) => x.cores.other))),
      runs,
      // Per scenario against the one it is compared with: the median of the per-round ratios of server CPU.
      ratios: Object.fromEntries(
        runs
          .filter((r) => r.sameAs && runs.some((x) => x.scenario === r.sameAs))
          .map((r) => [
            r.scenario,
            { vs: r.sameAs, serverCpu: extProcRatio(r, runs.find((x) => x.scenario === r.sameAs)!) },
          ]),
      ),
      inProcess: inProc,
    });
    const { connections, concurrency, durationSec, rounds } = settings;
    printExtProc(ctx.command, runs, inProc, { connections, concurrency, durationSec, rounds });
    log(`results: ${file}`);
    return runs.some((r) => r.rounds.some((x) => x.errors > 0)) ? 1 : 0;
  });
}

/** The ext_proc scenarios --scenarios names (all by default); an unknown name is an error. */
function extProcList(p: Prepared): ReturnType<typeof extProcScenarios> {
  const all = extProcScenarios(p.apiKey);
  const only = opt.scenarios?.split(',').map((s) => s.trim());
  const unknownNames = (only ?? []).filter((n) => !all.some((s) => s.name === n));
  if (unknownNames.length) {
    const known = all.map((s) => s.name).join(', ');
    throw new Error(`unknown scenario(s): ${unknownNames.join(', ')} (known with --ext-proc: ${known})`);
  }
  return only ? all.filter((s) => only.includes(s.name)) : all;
}

/** A warm-up of every exchange, then interleaved rounds; each scenario's median round. */
async function extProcRounds(
  list: ReturnType<typeof extProcScenarios>,
  to: { target: string; server: Awaited<ReturnType<typeof startMcpAuthz>>; grant?: (id: string) => Promise<void> },
  notes: string[],
): Promise<ExtProcRun[]> {
  const idle = await waitIdle(settings.waitIdleSec);
  if (!idle.idle) {
    notes.push(`the machine was not idle when the run started (${idle.busyCores} cores busy after ${idle.waitedSec}s)`);
  }
  const loop = { ...to, connections: settings.connections, concurrency: settings.concurrency };
  // JIT and caches warm on every exchange before the clock starts, as for the other scenarios.
  for (const s of list) {
    log(`${s.name}: warm-up ${settings.warmupSec}s`);
    const w = await extProcLoop(s, { ...loop, durationSec: settings.warmupSec });
    if (w.errors) notes.push(`${s.name}: ${w.errors} errors during the warm-up (${w.errorSamples.join('; ')})`);
  }
  const rounds = new Map<string, LoopRound[]>(list.map((s) => [s.name, []]));
  for (let r = 1; r <= settings.rounds; r++) {
    for (const s of list) {
      log(`round ${r}/${settings.rounds} ${s.name}`);
      rounds.get(s.name)!.push(await extProcLoop(s, { ...loop, durationSec: settings.durationSec }));
    }
  }
  return list.map((s) => {
    const rs = rounds.get(s.name)!;
    const sameAs = s.sameAs ? { sameAs: s.sameAs } : {};
    return { scenario: s.name, what: s.what, ...sameAs, rounds: rs, median: median(rs, (x) => x.perSec) };
  });
}

main().then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`bench: ${(err as Error).stack ?? err}\n`);
    process.exit(1);
  },
);
