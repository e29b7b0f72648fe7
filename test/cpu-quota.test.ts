// The default worker count honours the container's CPU quota: cgroup fixture trees laid out
// as the kernel shows them (v2 unified, v1 with and without a cgroup namespace, hybrid).
import test from 'ava';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cgroupCpuLimit, defaultWorkers } from '../src/server/cpu-quota.js';

/** A fake /sys/fs/cgroup and /proc/self/cgroup holding `files` (paths relative to the mount). */
function fixture(selfCgroup: string, files: Record<string, string>) {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-cgroup-'));
  const mount = join(dir, 'sys', 'fs', 'cgroup');
  mkdirSync(mount, { recursive: true });
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(join(mount, p)), { recursive: true });
    writeFileSync(join(mount, p), `${text}\n`);
  }
  writeFileSync(join(dir, 'self-cgroup'), selfCgroup);
  return { mount, selfCgroup: join(dir, 'self-cgroup') };
}

test('cgroup v2 in a container (cgroup namespace): cpu.max at the root', (t) => {
  t.is(cgroupCpuLimit(fixture('0::/\n', { 'cpu.max': '200000 100000' })), 2);
  t.is(cgroupCpuLimit(fixture('0::/\n', { 'cpu.max': '150000 100000' })), 1.5);
  t.is(cgroupCpuLimit(fixture('0::/\n', { 'cpu.max': 'max 100000' })), undefined, 'no limit');
});

test("cgroup v2 without a namespace: the process's own group, and the tightest of its ancestors", (t) => {
  const paths = fixture('0::/kubepods.slice/pod1/cri-abc\n', {
    'cpu.max': 'max 100000',
    'kubepods.slice/cpu.max': '800000 100000',
    'kubepods.slice/pod1/cpu.max': '50000 100000',
    'kubepods.slice/pod1/cri-abc/cpu.max': 'max 100000',
  });
  t.is(cgroupCpuLimit(paths), 0.5);
});

test('cgroup v1: cfs_quota_us over cfs_period_us, -1 for none, under cpu or cpu,cpuacct', (t) => {
  t.is(
    cgroupCpuLimit(
      fixture('4:cpu,cpuacct:/\n3:memory:/\n', {
        'cpu,cpuacct/cpu.cfs_quota_us': '300000',
        'cpu,cpuacct/cpu.cfs_period_us': '100000',
      }),
    ),
    3,
  );
  t.is(
    cgroupCpuLimit(
      fixture('4:cpu,cpuacct:/\n', { 'cpu,cpuacct/cpu.cfs_quota_us': '-1', 'cpu,cpuacct/cpu.cfs_period_us': '100000' }),
    ),
    undefined,
  );
  // Hybrid hierarchy (separate cpu and cpuacct, plus the unified line): v1's cpu controller rules.
  t.is(
    cgroupCpuLimit(
      fixture('2:cpuacct:/\n1:cpu:/\n0::/\n', {
        'cpu/cpu.cfs_quota_us': '50000',
        'cpu/cpu.cfs_period_us': '100000',
        'unified/cpu.max': 'max 100000',
      }),
    ),
    0.5,
  );
});

test("cgroup v1 without a cgroup namespace: the host path is listed, the container's group is the mount root", (t) => {
  const paths = fixture('5:cpu,cpuacct:/docker/0123abcd\n', {
    'cpu,cpuacct/cpu.cfs_quota_us': '150000',
    'cpu,cpuacct/cpu.cfs_period_us': '100000',
  });
  t.is(cgroupCpuLimit(paths), 1.5);
});

test('no cgroup files, unreadable or nonsense values: no limit, never a crash', (t) => {
  t.is(cgroupCpuLimit({ mount: '/nonexistent', selfCgroup: '/nonexistent/cgroup' }), undefined);
  t.is(cgroupCpuLimit(fixture('0::/\n', {})), undefined);
  t.is(cgroupCpuLimit(fixture('0::/\n', { 'cpu.max': 'garbage' })), undefined);
  t.is(cgroupCpuLimit(fixture('0::/\n', { 'cpu.max': '0 100000' })), undefined);
  t.is(
    cgroupCpuLimit(fixture('4:cpu:/\n', { 'cpu/cpu.cfs_quota_us': 'x', 'cpu/cpu.cfs_period_us': '100000' })),
    undefined,
  );
});

test('default workers: the cores, capped by the quota rounded up, at least one', (t) => {
  t.is(defaultWorkers(64, 2), 2);
  t.is(defaultWorkers(64, 1.5), 2);
  t.is(defaultWorkers(64, 0.25), 1);
  t.is(defaultWorkers(4, 16), 4, 'a quota above the cores does not add workers');
  t.is(defaultWorkers(8, undefined), 8);
});
