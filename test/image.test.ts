// The container image starts as built. There is no Docker engine here, so the test reads the
// Dockerfile's final stage, lays out its COPY instructions in a temporary root folder (the
// build stage's /src is this checkout after `npm run build && npm run policy:build`, which
// pretest runs), and runs its ENTRYPOINT + CMD from its WORKDIR with its ENV, absolute paths
// moved under that root. Two deliberate differences: node_modules is linked rather than copied
// (169 MB, and the image prunes dev dependencies), and the config's listen ports become 0
// after the test checks they are the EXPOSEd ones on 0.0.0.0, since fixed ports may be taken
// on a shared machine.
// The last test performs the build stage too (its COPY and RUN steps in a fresh folder, npm ci
// stood in for by hard links) and runs the image's command with --check-config on the tree it
// gives: production dependencies only, the bundle it built.
import test from 'ava';
import { execFile, execFileSync, spawn } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { parse as parseYaml, stringify } from 'yaml';
import { clientConstructors } from '../src/envoy/protos.js';
import { ROOT } from './helpers/cli.js';
import { checkRequest } from './helpers/service.js';
import { waitFor } from './helpers/wait.js';

interface Stage {
  from: string;
  workdir: string;
  env: Record<string, string>;
  copies: { from?: string; src: string[]; dest: string }[];
  entrypoint: string[];
  cmd: string[];
  expose: number[];
  user?: string;
  /** RUN instructions, in order (shell form). */
  runs: string[];
}

/** The instructions of each stage that matter here; JSON-form ENTRYPOINT/CMD only. */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [op, ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    const stage = stages.at(-1);
    switch (op!.toUpperCase()) {
      case 'FROM':
        stages.push({ from: args, workdir: '/', env: {}, copies: [], entrypoint: [], cmd: [], expose: [], runs: [] });
        break;
      case 'WORKDIR':
        stage!.workdir = isAbsolute(args) ? args : join(stage!.workdir, args);
        break;
      case 'ENV': {
        const [k, v] = args.split('=');
        stage!.env[k!] = v!;
        break;
      }
      case 'COPY': {
        const words = rest.filter((w) => !w.startsWith('--') || w.startsWith('--from='));
        const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
        const paths = words.filter((w) => !w.startsWith('--'));
        stage!.copies.push({ ...(from ? { from } : {}), src: paths.slice(0, -1), dest: paths.at(-1)! });
        break;
      }
      case 'ENTRYPOINT':
        stage!.entrypoint = JSON.parse(args);
        break;
      case 'CMD':
        stage!.cmd = JSON.parse(args);
        break;
      case 'EXPOSE':
        stage!.expose = rest.map(Number);
        break;
      case 'USER':
        stage!.user = args;
        break;
      case 'RUN':
        stage!.runs.push(args);
        break;
    }
  }
  return stages;
}

const dockerfile = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const image = dockerfile.at(-1)!;
const buildStage = dockerfile.find((s) => / AS build$/i.test(s.from))!;

/** Copies the final stage's files into `root` the way Docker would; `built` stands for the build stage's WORKDIR (default: this checkout, built). */
function layOut(root: string, built = ROOT): void {
  const under = (p: string) => join(root, p);
  for (const c of image.copies) {
    const dest = isAbsolute(c.dest) ? c.dest : join(image.workdir, c.dest);
    for (const src of c.src) {
      const from =
        c.from === 'build' ? join(built, src.replace(new RegExp(`^${buildStage.workdir}/?`), '')) : join(ROOT, src);
      if (!existsSync(from))
        throw new Error(`COPY ${src}: ${from} does not exist (run npm run build && npm run policy:build)`);
      const isDir = statSync(from).isDirectory();
      const target = isDir || !c.dest.endsWith('/') ? under(dest) : under(join(dest, basename(src)));
      mkdirSync(dirname(target), { recursive: true });
      if (basename(from) === 'node_modules') {
        if (built === ROOT) symlinkSync(from, target);
        else execFileSync('cp', ['-al', from, target]); // the build stage's own pruned tree (hard links: a second at most)
      } else cpSync(from, target, { recursive: true });
    }
  }
}

const IMAGE_CONFIG = '/etc/mcp-authz/config.yaml';

test('the image runs serve with a config it carries, as a non-root user, exposing the ports the config listens on', (t) => {
  t.deepEqual(image.entrypoint, ['node', '--max-semi-space-size=4', '/app/bin/mcp-authz.js']);
  t.deepEqual(image.cmd.slice(0, 3), ['serve', '--config', IMAGE_CONFIG]);
  t.truthy(
    image.copies.find((c) => c.dest === IMAGE_CONFIG),
    'the config is copied in',
  );
  t.not(image.user?.split(':')[0], '0');
  const root = mkdtempSync(join(tmpdir(), 'mcp-authz-image-'));
  layOut(root);
  const config = parseYaml(readFileSync(join(root, IMAGE_CONFIG), 'utf8'));
  t.is(config.listen.grpc, `0.0.0.0:${image.expose[0]}`, 'gRPC on every interface, on the EXPOSEd port');
  t.is(config.listen.http, `0.0.0.0:${image.expose[1]}`);
  t.true(
    existsSync(join(root, dirname(IMAGE_CONFIG), config.apiKeys.file)),
    'the keys file the config names is in the image',
  );
});

test("the image's config has the quickstart's endpoints and keys, so the README's demo requests work against it", (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mcp-authz-image-'));
  layOut(root);
  const container = parseYaml(readFileSync(join(root, IMAGE_CONFIG), 'utf8'));
  const quickstart = parseYaml(readFileSync(join(ROOT, 'examples', 'quickstart', 'config.yaml'), 'utf8'));
  t.deepEqual(container.endpoints, quickstart.endpoints);
  t.is(
    readFileSync(join(root, dirname(IMAGE_CONFIG), container.apiKeys.file), 'utf8'),
    readFileSync(join(ROOT, 'examples', 'quickstart', 'keys.yaml'), 'utf8'),
  );
});

test("the image's command line serves: ready, anonymous and API-key requests decided by the baked-in policy", async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'mcp-authz-image-'));
  layOut(root);
  const configFile = join(root, IMAGE_CONFIG);
  const config = parseYaml(readFileSync(configFile, 'utf8'));
  config.listen = { grpc: config.listen.grpc.replace(/:\d+$/, ':0'), http: config.listen.http.replace(/:\d+$/, ':0') };
  writeFileSync(configFile, stringify(config));

  const [command, ...args] = [...image.entrypoint, ...image.cmd].map((a) => (a.startsWith('/') ? join(root, a) : a));
  const child = spawn(command === 'node' ? process.execPath : command!, args, {
    cwd: join(root, image.workdir),
    env: { ...process.env, ...image.env, MCP_AUTHZ_LOG_LEVEL: 'info' },
  });
  let logs = '';
  child.stderr.on('data', (d) => (logs += d));
  child.stdout.on('data', (d) => (logs += d));
  let exit: number | null | undefined;
  child.on('exit', (code) => (exit = code));
  t.teardown(() => child.kill('SIGKILL'));
  let ports: { grpc: number; http: number } | undefined;
  await waitFor(
    'the image to serve',
    () => {
      if (exit !== undefined) throw new Error(`the image's command exited with ${exit}:\n${logs}`);
      const line = logs.split('\n').find((l) => l.includes('"mcp-authz serving"') && !l.includes('"worker"'));
      if (line) ports = JSON.parse(line);
      return ports !== undefined;
    },
    60_000,
    50,
  );

  await waitFor(
    '/readyz',
    async () => (await fetch(`http://127.0.0.1:${ports!.http}/readyz`)).status === 200,
    30_000,
    100,
  );
  const { Authorization } = clientConstructors();
  const client = new Authorization(`127.0.0.1:${ports!.grpc}`, grpc.credentials.createInsecure()) as grpc.Client &
    Record<string, any>;
  t.teardown(() => client.close());
  const check = (path: string, headers: Record<string, string> = {}) =>
    new Promise<any>((resolve, reject) =>
      client.Check(checkRequest({ method: 'GET', path, host: 'localhost', headers }), (err: Error | null, res: any) =>
        err ? reject(err) : resolve(res),
      ),
    );
  t.truthy((await check('/mcp/open')).ok_response, 'the open endpoint');
  t.truthy(
    (await check('/mcp/public', { 'x-api-key': 'mcp_4ecesAyZIs3wgIv1Ce6D58DGsD629PCqum63ZejV3DS12LP3l' })).ok_response,
    "the README's demo public key",
  );
  t.truthy((await check('/mcp/public')).denied_response, 'no key: denied');
  t.regex(logs, /policy loaded/);
  t.regex(logs, /"level":40,.*PUBLIC DEMO API KEYS ARE LOADED/, "the image's demo keys on 0.0.0.0 are warned about");
  t.is(exit, undefined, 'still running');
});

/**
 * The build stage performed without a container engine: its COPY instructions from this
 * checkout into a fresh folder, then its RUN steps there in order — `npm ci` stood in for by
 * hard links to this checkout's node_modules (installed from the same package-lock.json by
 * `npm ci`; no network), the tools stage's .tools by a link to this checkout's pinned tools.
 */
async function performBuildStage(): Promise<string> {
  const src = mkdtempSync(join(tmpdir(), 'mcp-authz-build-'));
  for (const c of buildStage.copies) {
    for (const from of c.src) {
      const target =
        c.dest === './' || c.dest === '.' ? join(src, basename(from)) : join(src, c.dest.replace(/^\.\//, ''));
      if (c.from === 'tools') symlinkSync(join(ROOT, '.tools'), join(src, '.tools'));
      else cpSync(join(ROOT, from), target, { recursive: true });
    }
  }
  for (const step of buildStage.runs) {
    if (/^npm ci\b/.test(step)) {
      await run('cp', ['-al', join(ROOT, 'node_modules'), join(src, 'node_modules')], src);
      // npm rewrites its hidden lockfile in place: a copy of its own, never the checkout's inode.
      const hidden = join(src, 'node_modules', '.package-lock.json');
      if (existsSync(hidden)) {
        const text = readFileSync(hidden);
        rmSync(hidden);
        writeFileSync(hidden, text);
      }
      continue;
    }
    await run('sh', ['-c', step], src);
  }
  return src;
}

/** A command run without blocking the event loop (the other tests of this file poll while it runs). */
function run(cmd: string, args: string[], cwd: string, env: Record<string, string> = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd,
        maxBuffer: 64 << 20,
        env: { ...process.env, PATH: `${dirname(process.execPath)}:${process.env.PATH}`, ...env },
      },
      (err, stdout, stderr) =>
        err
          ? reject(new Error(`${cmd} ${args.join(' ')} failed: ${err.message}\n${stdout}\n${stderr}`))
          : resolve(stdout),
    );
  });
}

// Serial: it runs alone, before this file's other tests, rather than beside the one that waits for serve to start.
test.serial(
  'the build stage performed for real gives a runtime tree with production dependencies only, and it passes serve --check-config',
  async (t) => {
    t.timeout(600_000);
    t.true(
      buildStage.runs.some((r) => /npm prune --omit=dev/.test(r)),
      'the build stage prunes dev dependencies',
    );
    const built = await performBuildStage();
    const root = mkdtempSync(join(tmpdir(), 'mcp-authz-image-'));
    t.teardown(() => {
      rmSync(built, { recursive: true, force: true });
      rmSync(root, { recursive: true, force: true });
    });
    layOut(root, built);
    const modules = join(root, 'app', 'node_modules');
    for (const dev of [
      'typescript',
      'ava',
      'tsx',
      '@grpc/grpc-js-xds',
      'google-auth-library',
      'node-forge',
      '@open-policy-agent/opa-wasm',
    ])
      t.false(existsSync(join(modules, dev)), `${dev} is not in the image`);
    for (const prod of ['@grpc/grpc-js', 'protobufjs', 'pino', 'zod'])
      t.true(existsSync(join(modules, prod)), `${prod} is in the image`);
    const [command, ...args] = [...image.entrypoint, ...image.cmd].map((a) => (a.startsWith('/') ? join(root, a) : a));
    const report = JSON.parse(
      await run(
        command === 'node' ? process.execPath : command!,
        [...args, '--check-config', '--json'],
        join(root, image.workdir),
        image.env,
      ),
    );
    t.true(report.ok);
    t.regex(report.policy.revision, /^sha256-/);
    t.is(
      report.policy.source,
      join(root, 'app', 'policies', 'build', 'bundle.tar.gz'),
      'the bundle the build stage built',
    );
    t.is(report.apiKeys.count, 3);
  },
);
