// The Envoy API .proto files vendored in proto/: complete (every import resolves there or is a
// well-known type every runtime bundles), loadable by both libraries the service uses, and
// exactly what scripts/sync-protos.mjs writes from its pinned upstream revisions.
import test from 'ava';
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import protobuf from 'protobufjs';
import { authRoot, extProcRoot, loaderOptions } from '../src/envoy/proto-root.js';
// @ts-expect-error: a plain .mjs script without type declarations
import * as sync from '../scripts/sync-protos.mjs';
import { ROOT } from './helpers/cli.js';

const PROTO = join(ROOT, 'proto');
/** Files of proto/ that the sync does not manage: the health protocol and the folder's README. */
const OWN = ['README.md', 'grpc/health/v1/health.proto'];

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out.push(...filesUnder(p));
    else out.push(relative(PROTO, p));
  }
  return out.sort();
}

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'scripts', 'sync-protos.mjs'), ...args],
      { cwd: ROOT },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

test('every import of a vendored .proto resolves in proto/, or is a well-known type protobufjs bundles', (t) => {
  const unresolved: string[] = [];
  const wellKnown = new Set<string>();
  for (const f of filesUnder(PROTO).filter((f) => f.endsWith('.proto'))) {
    for (const imp of sync.importsOf(readFileSync(join(PROTO, f), 'utf8')) as string[]) {
      if (sync.WELL_KNOWN.test(imp)) wellKnown.add(imp);
      else if (!filesUnder(PROTO).includes(imp)) unresolved.push(`${f} imports ${imp}`);
    }
  }
  t.deepEqual(unresolved, []);
  // descriptor.proto is registered by proto-root.ts from protobufjs's own descriptor.json.
  const bundled = Object.keys(protobuf.common as unknown as Record<string, unknown>).concat(
    'google/protobuf/descriptor.proto',
  );
  t.deepEqual(
    [...wellKnown].filter((w) => !bundled.includes(w)),
    [],
  );
  t.true(wellKnown.size >= 5, 'the Envoy protos import the well-known types');
});

test('the services load from proto/ alone, with proto-loader and with protobufjs', (t) => {
  for (const root of sync.ROOTS as string[]) {
    const def = protoLoader.loadSync(root, { ...loaderOptions, includeDirs: [PROTO] });
    t.truthy(
      def[
        root.includes('ext_proc')
          ? 'envoy.service.ext_proc.v3.ExternalProcessor'
          : 'envoy.service.auth.v3.Authorization'
      ],
      root,
    );
  }
  const check = authRoot().lookupService('envoy.service.auth.v3.Authorization').methods.Check!;
  check.resolve();
  t.is(check.resolvedRequestType!.fullName, '.envoy.service.auth.v3.CheckRequest');
  t.truthy(extProcRoot().lookupService('envoy.service.ext_proc.v3.ExternalProcessor').methods.Process);
  // Every file protobufjs read is in proto/ or one of its bundled well-known types.
  const read = [...authRoot().files, ...extProcRoot().files];
  t.true(read.filter((f) => f.startsWith(PROTO + '/')).length >= 20, 'the Envoy files were read from proto/');
  const outside = read.filter((f) => !f.startsWith(PROTO + '/') && !sync.WELL_KNOWN.test(f));
  t.deepEqual(outside, []);
});

test('proto/ is exactly what scripts/sync-protos.mjs writes from the pinned package, nothing more', (t) => {
  const expected: Map<string, Buffer> = sync.expectedOutput(sync.vendoredSet(sync.packageReader(ROOT)));
  t.deepEqual(filesUnder(PROTO), [...expected.keys(), ...OWN].sort());
  for (const [p, bytes] of expected) t.true(readFileSync(join(PROTO, p)).equals(bytes), p);
  const manifest = JSON.parse(readFileSync(join(PROTO, 'upstream.json'), 'utf8'));
  t.is(
    manifest.upstreams.find((u: { name: string }) => u.name === 'data-plane-api').revision,
    'f8b75d1efa92bbf534596a013d9ca5873f79dd30',
  );
  t.true(manifest.files.some((f: { path: string }) => f.path === 'envoy/service/auth/v3/external_auth.proto'));
  // Upstream files have LF line ends (the package's copies have CRLF).
  t.false(readFileSync(join(PROTO, 'envoy/service/auth/v3/external_auth.proto'), 'utf8').includes('\r'));
});

test('sync-protos --check names a vendored file that was edited or removed, and passes on the committed proto/', async (t) => {
  t.is((await run(['--check'])).code, 0);
  const out = mkdtempSync(join(tmpdir(), 'mcp-authz-proto-'));
  cpSync(PROTO, out, { recursive: true });
  writeFileSync(
    join(out, 'envoy/service/auth/v3/external_auth.proto'),
    readFileSync(join(PROTO, 'envoy/service/auth/v3/external_auth.proto'), 'utf8').replace(
      'Authorization',
      'Authorisation',
    ),
  );
  const r = await run(['--check', '--out', out]);
  t.is(r.code, 1);
  t.regex(r.stderr, /envoy\/service\/auth\/v3\/external_auth\.proto: differs/);
});

test('the sync refuses a package other than the pinned version', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-lock-'));
  const lock = JSON.parse(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  lock.packages['node_modules/@grpc/grpc-js-xds'].version = '1.14.2';
  writeFileSync(join(dir, 'package-lock.json'), JSON.stringify(lock));
  t.throws(() => sync.packageReader(dir), { message: /must pin @grpc\/grpc-js-xds@1\.14\.1/ });
});

test('no production dependency ships the Envoy protos any more: grpc-js-xds is a dev dependency only, and src/ never loads it', (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  t.false('@grpc/grpc-js-xds' in pkg.dependencies);
  t.is(
    pkg.devDependencies['@grpc/grpc-js-xds'],
    sync.PACKAGE.version,
    'pinned exactly: its bytes are what proto/ is checked against',
  );
  const hits = (dir: string): string[] =>
    readdirSync(dir).flatMap((e) => {
      const p = join(dir, e);
      return statSync(p).isDirectory()
        ? hits(p)
        : readFileSync(p, 'utf8').includes('grpc-js-xds')
          ? [relative(ROOT, p)]
          : [];
    });
  t.deepEqual(hits(join(ROOT, 'src')), []);
});
