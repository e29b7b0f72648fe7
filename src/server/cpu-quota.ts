// How many CPUs this process may really use: the cores Node sees, capped by the container's
// CPU quota (cgroup v2 cpu.max, v1 cpu.cfs_quota_us / cpu.cfs_period_us), which
// os.availableParallelism() does not read. A pod limited to 2 CPUs on a 64-core node gets 2
// workers, not 64 throttled ones. Read once at start-up.
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';

export interface CgroupPaths {
  /** Where the cgroup file systems are mounted (/sys/fs/cgroup). */
  mount: string;
  /** The process's cgroup membership (/proc/self/cgroup). */
  selfCgroup: string;
}

const SYSTEM: CgroupPaths = { mount: '/sys/fs/cgroup', selfCgroup: '/proc/self/cgroup' };

function read(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** The folders from `dir` up to `top`, innermost first: a limit on any ancestor applies too. */
function upTo(top: string, rel: string): string[] {
  const parts = rel.split('/').filter((p) => p !== '' && p !== '.' && p !== '..');
  const out: string[] = [];
  for (let i = parts.length; i >= 0; i--) out.push(join(top, ...parts.slice(0, i)));
  return out;
}

/** quota/period as CPUs, or undefined for "no limit" and anything unreadable. */
function ratio(quota: number, period: number): number | undefined {
  if (!Number.isFinite(quota) || !Number.isFinite(period) || quota <= 0 || period <= 0) return undefined;
  return quota / period;
}

function smallest(values: (number | undefined)[]): number | undefined {
  const set = values.filter((v): v is number => v !== undefined);
  return set.length === 0 ? undefined : Math.min(...set);
}

/** cgroup v2: `cpu.max` is "<quota> <period>" or "max <period>". */
function v2Limit(paths: CgroupPaths, rel: string): number | undefined {
  return smallest(
    upTo(paths.mount, rel).map((dir) => {
      const [quota, period] = (read(join(dir, 'cpu.max')) ?? '').split(/\s+/);
      return quota === 'max' ? undefined : ratio(Number(quota), Number(period ?? 100000));
    }),
  );
}

/** cgroup v1: cpu.cfs_quota_us (-1: none) over cpu.cfs_period_us, under the cpu controller's mount. */
function v1Limit(paths: CgroupPaths, rel: string): number | undefined {
  for (const name of ['cpu', 'cpu,cpuacct', 'cpuacct,cpu']) {
    const top = join(paths.mount, name);
    if (read(join(top, 'cpu.cfs_period_us')) === undefined && read(join(top, rel, 'cpu.cfs_period_us')) === undefined)
      continue;
    // Without a cgroup namespace the listed path is the host's; the container's own group is then the mount's root.
    return smallest(
      [...new Set([...upTo(top, rel), top])].map((dir) =>
        ratio(Number(read(join(dir, 'cpu.cfs_quota_us'))), Number(read(join(dir, 'cpu.cfs_period_us')))),
      ),
    );
  }
  return undefined;
}

/** The CPU limit of the process's cgroup (a fraction, e.g. 1.5), or undefined when there is none or it cannot be read. */
export function cgroupCpuLimit(paths: CgroupPaths = SYSTEM): number | undefined {
  const membership = read(paths.selfCgroup);
  if (membership === undefined) return undefined;
  const lines = membership.split('\n').map((l) => l.split(':'));
  const unified = lines.find((l) => l[0] === '0' && l[1] === '' && l.length >= 3);
  const v1 = lines.find((l) => l.length >= 3 && l[1]!.split(',').includes('cpu'));
  if (v1) return v1Limit(paths, v1.slice(2).join(':'));
  if (unified) return v2Limit(paths, unified.slice(2).join(':'));
  return undefined;
}

/** The default number of workers: the cores Node sees, capped by the CPU quota rounded up (at least 1). */
export function defaultWorkers(cores = availableParallelism(), limit = cgroupCpuLimit()): number {
  if (limit === undefined) return cores;
  return Math.max(1, Math.min(cores, Math.ceil(limit)));
}
