// Child processes of the benchmark: started in their own process group so that a server
// and all its workers are stopped together, on normal exit, on an error and on SIGINT.
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { createWriteStream, readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';

const live = new Set<ChildProcess>();

function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal);
  } catch {
    /* already gone */
  }
}

let hooked = false;
function hookExit(): void {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const c of live) killGroup(c, 'SIGKILL');
  });
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      process.stderr.write(`\nbench: ${sig}: stopping servers and load generators\n`);
      for (const c of live) killGroup(c, 'SIGTERM');
      setTimeout(() => process.exit(130), 1500).unref();
    });
  }
}

export interface Started {
  child: ChildProcess;
  pid: number;
  /** SIGTERM to the group, SIGKILL after the grace period. */
  stop(graceMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

/** Starts a process in its own group; stdout/stderr go to `logFile` (or are ignored). */
export function start(
  cmd: string,
  args: string[],
  opts: {
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    logFile?: string;
    onStdout?: (line: string) => void;
    captureStderr?: boolean;
  } = {},
): Started {
  hookExit();
  // Output nobody reads goes to /dev/null, not through this process: a pipe this busy process
  // drains late would fill up, and mcp-authz would drop (and count) decision-log lines.
  const wantOut = opts.logFile !== undefined || opts.onStdout !== undefined;
  const wantErr = opts.logFile !== undefined || opts.captureStderr === true;
  const spawnOpts: SpawnOptions = {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    detached: true,
    stdio: ['ignore', wantOut ? 'pipe' : 'ignore', wantErr ? 'pipe' : 'ignore'],
  };
  const child = spawn(cmd, args, spawnOpts);
  live.add(child);
  const log = opts.logFile ? createWriteStream(opts.logFile) : undefined;
  let buf = '';
  child.stdout?.on('data', (d: Buffer) => {
    log?.write(d);
    if (opts.onStdout) {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        opts.onStdout(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    }
  });
  child.stderr?.on('data', (d: Buffer) => log?.write(d));
  const exited = new Promise<number | null>((resolve) => {
    child.on('exit', (code) => {
      live.delete(child);
      log?.end();
      resolve(code);
    });
    child.on('error', () => {
      live.delete(child);
      resolve(-1);
    });
  });
  return {
    child,
    pid: child.pid ?? -1,
    exited,
    async stop(graceMs = 5000) {
      killGroup(child, 'SIGTERM');
      const t = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
      killGroup(child, 'SIGKILL'); // stray workers of the group
    },
  };
}

/** Runs a command to completion, collecting its output. */
export function run(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  hookExit();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    live.add(child);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    const timer = opts.timeoutMs ? setTimeout(() => killGroup(child, 'SIGKILL'), opts.timeoutMs) : undefined;
    const done = (code: number | null) => {
      if (timer) clearTimeout(timer);
      live.delete(child);
      resolve({ code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    };
    child.on('close', done);
    child.on('error', (e) => {
      err.push(Buffer.from(String(e)));
      done(-1);
    });
  });
}

/** Ports freePort handed out in this process: never handed out twice. */
const handedOut = new Set<number>();
/** The lowest port freePort picks from (below it: well-known and registered services). */
const PICK_FROM = 10_000;

/**
 * A free loopback TCP port for a program that is told its port (a config file, redis-server,
 * postgres), checked free by binding it, then released. Picked at random outside the kernel's
 * ephemeral range (net.ipv4.ip_local_port_range): the kernel hands ports of that range to every
 * bind to port 0 and every outgoing connection on the machine, so a port found through port 0
 * can be some connection's local port by the time the program binds it; a port outside it is
 * only ever taken by someone who asks for it by number. Where a program can bind port 0 and say
 * which port it got, prefer that: nothing can take the port in between.
 */
export async function freePort(): Promise<number> {
  const [low, high] = ephemeralRange();
  const below = Math.max(0, low - PICK_FROM);
  const above = Math.max(0, 65_535 - high);
  for (let attempt = 0; below + above > 0 && attempt < 200; attempt++) {
    const i = Math.floor(Math.random() * (below + above));
    const port = i < below ? PICK_FROM + i : high + 1 + (i - below);
    if (handedOut.has(port) || !(await canBind(port))) continue;
    handedOut.add(port);
    return port;
  }
  // Nothing outside the range (it spans every port): the kernel's pick, as a last resort.
  for (;;) {
    const port = await kernelPick();
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
}

/** net.ipv4.ip_local_port_range (Linux's default where it cannot be read). */
function ephemeralRange(): [number, number] {
  try {
    const [low, high] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (Number.isInteger(low) && Number.isInteger(high)) return [low!, high!];
  } catch {
    /* not Linux */
  }
  return [32_768, 60_999];
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function kernelPick(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/** PIDs of `root` and all its descendants, from /proc. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const list = children.get(ppid) ?? [];
      list.push(Number(name));
      children.set(ppid, list);
    } catch {
      /* exited meanwhile */
    }
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const pid = queue.shift()!;
    out.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * A process tree's resident memory. `bytes`: the sum of VmRSS, which counts the pages the
 * processes share (the node binary and libraries, file-backed: some 50 MiB each) once per
 * process. `ownBytes`: what the tree holds counting them once — every process's anonymous
 * and shared-memory pages, plus the largest process's file-backed pages — which is close to
 * what a container's memory cgroup is charged (a page in the page cache is charged once).
 */
export function treeRss(root: number): { bytes: number; ownBytes: number; processes: number } {
  let bytes = 0;
  let anon = 0;
  let file = 0;
  let processes = 0;
  const kib = (status: string, field: string) =>
    Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? 0) * 1024;
  for (const pid of processTree(root)) {
    try {
      const status = readFileSync(`/proc/${pid}/status`, 'utf8');
      if (!/VmRSS:/.test(status)) continue;
      bytes += kib(status, 'VmRSS');
      anon += kib(status, 'RssAnon') + kib(status, 'RssShmem');
      file = Math.max(file, kib(status, 'RssFile'));
      processes++;
    } catch {
      /* exited meanwhile */
    }
  }
  return { bytes, ownBytes: anon + file, processes };
}

export interface RssSample {
  t: number;
  bytes: number;
  ownBytes: number;
  processes: number;
}

/** Samples a process tree's RSS every `everyMs` until stopped. */
export function sampleRss(root: number, everyMs = 250): { stop(): RssSample[]; samples: RssSample[] } {
  const samples: RssSample[] = [];
  const t0 = Date.now();
  const take = () => samples.push({ t: Date.now() - t0, ...treeRss(root) });
  take();
  const timer = setInterval(take, everyMs);
  return {
    samples,
    stop() {
      clearInterval(timer);
      take();
      return samples;
    },
  };
}

const CLK_TCK = 100;

/** CPU seconds (user + system) used so far by the processes of a tree. */
export function treeCpuSeconds(root: number): number {
  let ticks = 0;
  for (const pid of processTree(root)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      /* exited meanwhile */
    }
  }
  return ticks / CLK_TCK;
}

/** CPU seconds the whole machine spent busy (all cores), from /proc/stat. */
export function machineBusySeconds(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  const idle = (v[3] ?? 0) + (v[4] ?? 0);
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  return (total - idle) / CLK_TCK;
}

/**
 * Waits (at most `maxSec`) until the machine is idle: under `threshold` cores busy over a
 * one-second window, so a run does not start while another job holds the CPUs. Returns
 * how long it waited and whether the machine was idle in the end.
 */
export async function waitIdle(
  maxSec: number,
  threshold = 0.3,
): Promise<{ waitedSec: number; idle: boolean; busyCores: number }> {
  const t0 = Date.now();
  let busyCores = NaN;
  for (;;) {
    const b0 = machineBusySeconds();
    await new Promise((r) => setTimeout(r, 1000));
    busyCores = machineBusySeconds() - b0;
    const waitedSec = (Date.now() - t0) / 1000;
    if (busyCores < threshold)
      return { waitedSec: Math.round(waitedSec), idle: true, busyCores: Math.round(busyCores * 100) / 100 };
    if (waitedSec >= maxSec)
      return { waitedSec: Math.round(waitedSec), idle: false, busyCores: Math.round(busyCores * 100) / 100 };
  }
}

/**
 * The command run under bash, which prints its child's CPU time (`times`) on stderr when it
 * ends: a load generator's own CPU over its whole run, read after it exited, with no
 * sampling gap at the end. parseCpuTimes reads it back.
 */
export function withCpuTimes(cmd: string, args: string[]): [string, string[]] {
  return ['bash', ['-c', '"$@"; rc=$?; echo __cpu__ >&2; times >&2; exit $rc', 'bash', cmd, ...args]];
}

/** The child's user + system seconds from withCpuTimes' line, and stderr without it. */
export function parseCpuTimes(stderr: string): { cpuSec: number | undefined; stderr: string } {
  // `times` prints the shell's own user and system time, then its children's.
  const m = /__cpu__\n[^\n]*\n(\d+)m([\d.]+)s (\d+)m([\d.]+)s\n?/.exec(stderr);
  if (!m) return { cpuSec: undefined, stderr };
  const cpuSec = Number(m[1]) * 60 + Number(m[2]) + Number(m[3]) * 60 + Number(m[4]);
  return { cpuSec, stderr: stderr.replace(m[0], '') };
}

/** The machine's load averages (1, 5, 15 minutes), as `uptime` prints them. */
export function loadAverage(): [number, number, number] {
  const [a, b, c] = readFileSync('/proc/loadavg', 'utf8').split(' ').map(Number);
  return [a!, b!, c!];
}
