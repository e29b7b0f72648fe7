// `npm run bench -- --profile`: where mcp-authz spends its CPU per scenario. For each
// scenario, `mcp-authz serve --workers 1` runs under `node --cpu-prof` while h2load drives
// that scenario's request; the profile written at exit is reduced to the functions with the
// most self time and to self time per module (package, dist/ folder, Node internals), and
// the server's CPU per answered call.
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { round } from './ghz.js';
import { CHECK_PATH, GRPC_HEADERS, runH2load, runLoadgen } from './h2load.js';
import { writeMcpAuthzConfig, type Prepared } from './mcp-authz.js';
import { mcpAuthzCli, out, root, tools } from './paths.js';
import { freePort, loadAverage, start, treeCpuSeconds } from './processes.js';
import { CheckClient, describe } from './verify.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  /** Share of the busy samples (idle excluded), percent. */
  pct: number;
  ms: number;
}

export interface ProcessProfile {
  role: 'primary' | 'worker';
  pid: number;
  busyMs: number;
  topFunctions: SelfTime[];
  topModules: SelfTime[];
  profileFile: string;
}

export interface ScenarioProfile {
  scenario: string;
  workers: number;
  rps: number;
  /** The server's CPU (user + system, all its processes) per answered call over the measured load, µs. */
  cpuUsPerCall: number;
  loadAverageAtStart: [number, number, number];
  /** One profile per process (with workers: the primary and each worker). */
  processes: ProcessProfile[];
}

/** A source location without the machine's paths: "dist/auth/key-registry.js", "@grpc/grpc-js/build/src/server.js". */
function where(url: string): string {
  const path = url.replace(/^file:\/\//, '');
  const i = path.lastIndexOf('node_modules/');
  if (i >= 0) return path.slice(i + 'node_modules/'.length);
  return path.startsWith(root + '/') ? path.slice(root.length + 1) : path;
}

function moduleOf(url: string, fn: string): string {
  if (!url) return fn.startsWith('(') ? fn : '(native)';
  const w = where(url);
  if (w.startsWith('node:')) return w.replace(/^node:(internal\/)?([^/:]+).*$/, 'node:$2');
  if (w.startsWith('dist/')) return w.split('/').slice(0, 2).join('/');
  if (/^@[^/]+\//.test(w)) return w.split('/').slice(0, 2).join('/');
  return w.split('/')[0]!;
}

export function summarizeProfile(
  file: string,
  top = 25,
): { busyMs: number; topFunctions: SelfTime[]; topModules: SelfTime[] } {
  const p = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byNode = new Map<number, number>();
  p.samples.forEach((id, i) => byNode.set(id, (byNode.get(id) ?? 0) + (p.timeDeltas[i] ?? 0)));
  const fns = new Map<string, number>();
  const mods = new Map<string, number>();
  let busy = 0;
  for (const n of p.nodes) {
    const us = byNode.get(n.id) ?? 0;
    const f = n.callFrame;
    if (us === 0 || f.functionName === '(idle)') continue;
    busy += us;
    const name = `${f.functionName || '(anonymous)'}${f.url ? ` ${where(f.url)}:${f.lineNumber + 1}` : ''}`;
    fns.set(name, (fns.get(name) ?? 0) + us);
    const mod = moduleOf(f.url, f.functionName);
    mods.set(mod, (mods.get(mod) ?? 0) + us);
  }
  const rank = (m: Map<string, number>): SelfTime[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, us]) => ({ name, pct: round((us / busy) * 100, 1), ms: round(us / 1000, 0) }));
  return { busyMs: round(busy / 1000, 0), topFunctions: rank(fns), topModules: rank(mods) };
}

export async function profileScenarios(
  p: Prepared,
  bundle: string | undefined,
  o: {
    durationSec: number;
    warmupSec: number;
    connections: number;
    streams: number;
    workers: number;
    log: (m: string) => void;
  },
): Promise<ScenarioProfile[]> {
  const results: ScenarioProfile[] = [];
  for (const s of p.list) {
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const configFile = writeMcpAuthzConfig(p, grpcPort, httpPort, bundle);
    const dir = join(out, 'profiles', s.name);
    rmSync(dir, { recursive: true, force: true });
    const server = start(
      'node',
      [
        '--cpu-prof',
        `--cpu-prof-dir=${dir}`,
        ...mcpAuthzCli.slice(1),
        'serve',
        '--config',
        configFile,
        '--workers',
        String(o.workers),
      ],
      {
        cwd: root,
        env: { ...process.env, NODE_ENV: 'production' },
      },
    );
    const client = new CheckClient(`127.0.0.1:${grpcPort}`);
    let alive = true;
    void server.exited.then(() => (alive = false));
    try {
      await client.waitReady(s.requests[0]!, 60_000, () => alive);
      const v = await client.verify(s.requests[0]!, s.expect);
      if (!v.ok) throw new Error(`profile ${s.name}: ${describe(v)}`);
      const load = {
        url: `http://127.0.0.1:${grpcPort}${CHECK_PATH}`,
        bodyFile: p.data.get(s.name)!.grpc,
        headers: GRPC_HEADERS,
        connections: o.connections,
        streams: o.streams,
      };
      // h2load sends one body: a token set goes through bench/loadgen, its requests round-robin.
      const several = s.requests.length > 1;
      const drive = (durationSec: number) =>
        several
          ? runLoadgen({
              bin: tools.loadgen,
              target: `127.0.0.1:${grpcPort}`,
              dataFile: p.data.get(s.name)!.list,
              connections: o.connections,
              streams: o.streams,
              durationSec,
            })
          : runH2load({ ...load, durationSec });
      o.log(
        `profile ${s.name}: warm-up ${o.warmupSec}s, then ${o.durationSec}s under ${several ? 'bench/loadgen' : 'h2load'} (mcp-authz serve --workers ${o.workers} under --cpu-prof)`,
      );
      await drive(o.warmupSec);
      const loadAtStart = loadAverage();
      const cpu0 = treeCpuSeconds(server.pid);
      const r = await drive(o.durationSec);
      const cpu = treeCpuSeconds(server.pid) - cpu0;
      client.close();
      await server.stop(30_000);
      // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile; thread 0 is each process's main thread.
      const files = readdirSync(dir).filter((f) => /\.\d+\.0\.\d+\.cpuprofile$/.test(f));
      if (files.length === 0) throw new Error(`profile ${s.name}: no .cpuprofile written in ${dir}`);
      const processes: ProcessProfile[] = files.map((f) => {
        const pid = Number(f.split('.')[3]);
        return {
          role: pid === server.pid ? 'primary' : 'worker',
          pid,
          ...summarizeProfile(join(dir, f)),
          profileFile: join(dir, f).slice(root.length + 1),
        };
      });
      processes.sort((a, b) => (a.role === b.role ? 0 : a.role === 'primary' ? -1 : 1));
      results.push({
        scenario: s.name,
        workers: o.workers,
        rps: r.rps,
        cpuUsPerCall: round((cpu / r.done) * 1e6, 1),
        loadAverageAtStart: loadAtStart,
        processes,
      });
    } finally {
      client.close();
      await server.stop(30_000);
    }
  }
  return results;
}

export function printProfiles(command: string, rows: ScenarioProfile[]): void {
  const w = (line: string) => process.stdout.write(line + '\n');
  w('');
  w(`${command}: mcp-authz serve under node --cpu-prof, h2load one thread`);
  for (const r of rows) {
    w('');
    w(
      `${r.scenario} (--workers ${r.workers}): ${r.rps} calls/s, ${r.cpuUsPerCall} µs of server CPU per call (all processes); load average ${r.loadAverageAtStart.join(' ')}`,
    );
    for (const p of r.processes) {
      w(`  ${p.role} ${p.pid}: ${p.busyMs} ms busy in the profile; self time by module:`);
      for (const m of p.topModules.slice(0, 12)) w(`    ${m.pct.toFixed(1).padStart(5)}%  ${m.name}`);
      w('  self time by function:');
      for (const f of p.topFunctions.slice(0, 20)) w(`    ${f.pct.toFixed(1).padStart(5)}%  ${f.name}`);
    }
  }
}
