// WatchedFile, the one reload mechanism of the API keys file and the policy: it sees changes
// by folder watch (renames, kubelet's "..data" swaps) or by poll, rebuilds only when the
// contents changed, keeps the last good value, and never runs two builds at once. Every
// wait below is on a reload event, never on time.
import test from 'ava';
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WatchedFile, type ReloadResult, type WatchedFileOptions } from '../src/config/watched-file.js';

const quiet = { warn: () => undefined };
const HOUR = 3_600_000;

function folder(): string {
  return mkdtempSync(join(tmpdir(), 'mcp-authz-watch-'));
}

/** A WatchedFile whose value is the file's text; "bad" text fails the build. Counts builds. */
function watched(path: string, extra: Partial<WatchedFileOptions<string>> = {}) {
  const builds = { count: 0 };
  const w = new WatchedFile<string>({
    path,
    build: (s) => {
      builds.count++;
      const text = s.content?.toString('utf8') ?? '(folder)';
      if (text.startsWith('bad')) throw new Error(`refused: ${text}`);
      return text;
    },
    pollIntervalMs: HOUR,
    log: quiet,
    what: 'the test file',
    ...extra,
  });
  return { w, builds };
}

/**
 * The next reload the WatchedFile reports. Its watcher and timers do not keep a process
 * alive (the service's listeners do), so a handle keeps this one alive until the event.
 */
function nextReload<T>(w: WatchedFile<T>): Promise<ReloadResult<T>> {
  const keepAlive = setInterval(() => undefined, HOUR);
  return new Promise((resolve) => {
    let done = false;
    w.onReload((r) => {
      if (!done) {
        clearInterval(keepAlive);
        resolve(r);
      }
      done = true;
    });
  });
}

test('a file replaced by rename is reloaded through the folder watch', async (t) => {
  const dir = folder();
  const file = join(dir, 'keys.yaml');
  writeFileSync(file, 'v1');
  const { w } = watched(file);
  t.teardown(() => w.close());
  await w.reload();
  t.is(w.current, 'v1');
  w.start();
  const reloaded = nextReload(w);
  writeFileSync(`${file}.tmp`, 'v2');
  renameSync(`${file}.tmp`, file);
  const r = await reloaded;
  t.true(r.ok);
  t.is(w.current, 'v2');
});

test('a kubelet "..data" symlink swap is reloaded although the file\'s own name never changes', async (t) => {
  const mount = folder();
  mkdirSync(join(mount, '..v1'));
  mkdirSync(join(mount, '..v2'));
  writeFileSync(join(mount, '..v1', 'keys.yaml'), 'v1');
  writeFileSync(join(mount, '..v2', 'keys.yaml'), 'v2');
  symlinkSync('..v1', join(mount, '..data'));
  symlinkSync(join('..data', 'keys.yaml'), join(mount, 'keys.yaml'));
  const { w } = watched(join(mount, 'keys.yaml'));
  t.teardown(() => w.close());
  await w.reload();
  w.start();
  const reloaded = nextReload(w);
  symlinkSync('..v2', join(mount, '..data_tmp'));
  renameSync(join(mount, '..data_tmp'), join(mount, '..data'));
  await reloaded;
  t.is(w.current, 'v2');
});

test('without file events, the poll sees the change', async (t) => {
  const dir = folder();
  const file = join(dir, 'policy.bin');
  writeFileSync(file, 'v1');
  const { w } = watched(file, { fsEvents: false, pollIntervalMs: 10 });
  t.teardown(() => w.close());
  await w.reload();
  w.start();
  const reloaded = nextReload(w);
  writeFileSync(file, 'v2');
  await reloaded;
  t.is(w.current, 'v2');
});

test('a folder source is watched as a whole: a change to any file in it reloads', async (t) => {
  const dir = folder();
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub', 'a.rego'), 'package a');
  const { w, builds } = watched(dir);
  t.teardown(() => w.close());
  await w.reload();
  t.is(builds.count, 1);
  w.start();
  const reloaded = nextReload(w);
  writeFileSync(join(dir, 'sub', 'a.rego'), 'package a # changed');
  t.true((await reloaded).ok);
  t.is(builds.count, 2);
});

test('a broken file keeps the last good value, is reported once, and a fix is taken', async (t) => {
  const file = join(folder(), 'keys.yaml');
  writeFileSync(file, 'v1');
  const { w, builds } = watched(file);
  const told: ReloadResult<string>[] = [];
  w.onReload((r) => told.push(r));
  await w.reload();
  writeFileSync(file, 'bad: half a file');
  const broken = await w.reload();
  t.false(broken.ok);
  if (!broken.ok) {
    t.false(broken.unreadable);
    t.is(broken.kept, 'v1');
    t.regex(String(broken.error), /refused: bad/);
  }
  t.is(w.current, 'v1', 'the last good value stays in force');
  const again = await w.reload();
  t.false(again.ok);
  t.is(builds.count, 2, 'the same broken contents are not built again');
  t.is(told.length, 2, 'reported once: the first load, then the broken file');
  writeFileSync(file, 'v3');
  t.true((await w.reload()).ok);
  t.is(w.current, 'v3');
});

test('contents that did not change are no reload: a touched or rewritten file is not built again', async (t) => {
  const file = join(folder(), 'keys.yaml');
  writeFileSync(file, 'v1');
  const { w, builds } = watched(file);
  const told: unknown[] = [];
  await w.reload();
  w.onReload((r) => told.push(r));
  const later = new Date(Date.now() + 60_000);
  utimesSync(file, later, later);
  writeFileSync(file, 'v1');
  const r = await w.reload();
  t.deepEqual(r, { ok: true, value: 'v1', changed: false });
  t.is(builds.count, 1);
  t.deepEqual(told, []);
});

test('an unreadable source is reported every time and keeps the value in force', async (t) => {
  const file = join(folder(), 'keys.yaml');
  writeFileSync(file, 'v1');
  const { w } = watched(file);
  await w.reload();
  rmSync(file);
  for (let i = 0; i < 2; i++) {
    const r = await w.reload();
    t.false(r.ok);
    if (!r.ok) {
      t.true(r.unreadable);
      t.is((r.error as NodeJS.ErrnoException).code, 'ENOENT');
    }
  }
  t.is(w.current, 'v1');
});

test('reloads never overlap: calls during a build are coalesced into one more build after it', async (t) => {
  const file = join(folder(), 'keys.yaml');
  writeFileSync(file, 'v1');
  let active = 0;
  let maxActive = 0;
  let release: () => void = () => undefined;
  let builds = 0;
  const w = new WatchedFile<string>({
    path: file,
    build: async (s) => {
      builds++;
      active++;
      maxActive = Math.max(maxActive, active);
      if (builds === 1) await new Promise<void>((r) => (release = r));
      active--;
      return s.content!.toString('utf8');
    },
    pollIntervalMs: HOUR,
    log: quiet,
    what: 'the test file',
  });
  const first = w.reload();
  writeFileSync(file, 'v2');
  const second = w.reload();
  const third = w.reload();
  t.is(second, first, 'a call during a reload joins it');
  t.is(third, first);
  release();
  const r = await first;
  t.is(maxActive, 1);
  t.is(builds, 2, 'one build for the calls that came during the first');
  t.true(r.ok);
  t.is(w.current, 'v2');
});

test('after close no reload runs, and close waits for the one in flight', async (t) => {
  const file = join(folder(), 'keys.yaml');
  writeFileSync(file, 'v1');
  let release: () => void = () => undefined;
  const w = new WatchedFile<string>({
    path: file,
    build: async (s) => {
      await new Promise<void>((r) => (release = r));
      return s.content!.toString('utf8');
    },
    pollIntervalMs: 10,
    fsEvents: false,
    log: quiet,
    what: 'the test file',
  });
  const inFlight = w.reload();
  let closed = false;
  const closing = w.close().then(() => (closed = true));
  await Promise.resolve();
  t.false(closed, 'close waits for the reload in flight');
  release();
  await closing;
  t.true(closed);
  const r = await inFlight;
  t.false(r.ok, 'a value built after close is not put in force');
  t.is(w.current, undefined);
  w.start();
  t.is(w.current, undefined, 'start after close does nothing');
});

test('a set of files in two folders is one source: a change to either is seen by its folder watch and rebuilt from all of them read together', async (t) => {
  const [a, b] = [folder(), folder()];
  const cert = join(a, 'tls.crt');
  const ca = join(b, 'ca.crt');
  writeFileSync(cert, 'cert-1');
  writeFileSync(ca, 'ca-1');
  const w = new WatchedFile<string>({
    path: [cert, ca],
    build: (s) => s.files!.map((f) => f.toString('utf8')).join('+'),
    pollIntervalMs: HOUR,
    log: quiet,
    what: 'the test set',
  });
  t.teardown(() => w.close());
  t.like(await w.reload(), { ok: true, value: 'cert-1+ca-1' });
  w.start();
  let next = nextReload(w);
  writeFileSync(join(b, 'ca.new'), 'ca-2');
  renameSync(join(b, 'ca.new'), ca);
  t.like(await next, { ok: true, value: 'cert-1+ca-2' });
  next = nextReload(w);
  writeFileSync(join(a, 'tls.new'), 'cert-2');
  renameSync(join(a, 'tls.new'), cert);
  t.like(await next, { ok: true, value: 'cert-2+ca-2' });
  next = nextReload(w);
  rmSync(ca);
  t.like(await next, { ok: false, unreadable: true, kept: 'cert-2+ca-2' });
});
