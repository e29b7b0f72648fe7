#!/usr/bin/env node
// Vendors the Envoy API .proto files the service loads into proto/: the ext_authz and ext_proc
// services and every file they import, at pinned revisions of the upstream repositories
// (UPSTREAMS below), byte for byte. Well-known types (google/protobuf/*) are not vendored: every
// protobuf runtime and compiler ships them.
//
// Where the files come from:
//   default      the npm package @grpc/grpc-js-xds at an exact version (a devDependency: the
//                lockfile's integrity pins its bytes). Its deps/ folders are the upstream
//                repositories at exactly these revisions (packed with CRLF line ends, which are
//                turned back into the upstream LF here); the git blob ids in proto/upstream.json
//                let anyone check that against the upstream repositories.
//   --git NAME=DIR   local clones of the upstream repositories (all four), read at the pinned
//                revisions with `git show`: how to move to a newer revision (change the pins,
//                run with --git, commit the result).
//
// Usage: node scripts/sync-protos.mjs [--check] [--out DIR] [--git NAME=DIR]...
//   --check   write nothing; exit 1 listing every file of proto/ that differs from the pins
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The services the service serves; everything they import follows. */
export const ROOTS = [
  'envoy/service/auth/v3/external_auth.proto',
  'envoy/service/ext_proc/v3/external_processor.proto',
];

/** Searched in this order for each imported path (as protoc's include path would be). */
export const UPSTREAMS = [
  {
    name: 'data-plane-api',
    url: 'https://github.com/envoyproxy/data-plane-api',
    revision: 'f8b75d1efa92bbf534596a013d9ca5873f79dd30',
    packageDir: 'deps/envoy-api',
  },
  {
    name: 'xds',
    url: 'https://github.com/cncf/xds',
    revision: '3a472e524827f72d1ad621c4983dd5af54c46776',
    packageDir: 'deps/xds',
  },
  {
    name: 'protoc-gen-validate',
    url: 'https://github.com/bufbuild/protoc-gen-validate',
    revision: '0af61d9dc28712dc0e6f8e1a940855a2ee0cb9ed',
    packageDir: 'deps/protoc-gen-validate',
  },
  {
    name: 'googleapis',
    url: 'https://github.com/googleapis/googleapis',
    revision: '8c53b2cb792234354c13336ac7daee61333deade',
    packageDir: 'deps/googleapis',
  },
];

/** The npm package that carries those revisions, and its lockfile integrity. */
export const PACKAGE = {
  name: '@grpc/grpc-js-xds',
  version: '1.14.1',
  integrity: 'sha512-F2mVXwEeMWw1znPUrp+8ykjsIOVnf7Rv+EyIvXOfz73w5tNolCnzokpLkE/d2Ehx30PJmZXqCQdMpx8DcBJohA==',
};

/** Imports every runtime provides (protobufjs and proto-loader bundle them). */
export const WELL_KNOWN = /^google\/protobuf\/[a-z_]+\.proto$/;

export const MANIFEST = 'upstream.json';

/** The files of a .proto's `import` statements. */
export function importsOf(text) {
  const out = [];
  for (const m of text.matchAll(/^\s*import\s+(?:public\s+|weak\s+)?"([^"]+)"\s*;/gm)) out.push(m[1]);
  return out;
}

/** Git's blob id of a file's bytes: `git hash-object`, comparable with `git rev-parse REV:path` upstream. */
export function blobId(bytes) {
  return createHash('sha1').update(`blob ${bytes.length}\0`).update(bytes).digest('hex');
}

/** Reads from the pinned npm package in node_modules; refuses any other version or integrity. */
export function packageReader(dir = root) {
  const lock = JSON.parse(readFileSync(join(dir, 'package-lock.json'), 'utf8'));
  const entry = lock.packages?.[`node_modules/${PACKAGE.name}`];
  if (!entry || entry.version !== PACKAGE.version || entry.integrity !== PACKAGE.integrity) {
    throw new Error(
      `package-lock.json must pin ${PACKAGE.name}@${PACKAGE.version} (${PACKAGE.integrity}); it has ${entry ? `${entry.version} (${entry.integrity})` : 'none'}. The pins are in scripts/sync-protos.mjs.`,
    );
  }
  const pkgDir = join(dir, 'node_modules', PACKAGE.name);
  const installed = existsSync(join(pkgDir, 'package.json'))
    ? JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version
    : undefined;
  if (installed !== PACKAGE.version)
    throw new Error(`node_modules has ${PACKAGE.name}@${installed ?? '(none)'}, not ${PACKAGE.version}: run npm ci`);
  return (upstream, path) => {
    const p = join(pkgDir, upstream.packageDir, path);
    if (!existsSync(p)) return undefined;
    // Packed with CRLF line ends; the upstream files have LF.
    return Buffer.from(readFileSync(p, 'latin1').replace(/\r\n/g, '\n'), 'latin1');
  };
}

/** Reads from local clones of the upstream repositories, at the pinned revisions. */
export function gitReader(clones) {
  for (const u of UPSTREAMS)
    if (!clones[u.name])
      throw new Error(`--git needs all of ${UPSTREAMS.map((x) => x.name).join(', ')}; ${u.name} is missing`);
  return (upstream, path) => {
    try {
      return execFileSync('git', ['-C', clones[upstream.name], 'show', `${upstream.revision}:${path}`], {
        stdio: ['ignore', 'pipe', 'ignore'],
        maxBuffer: 1 << 26,
      });
    } catch {
      return undefined;
    }
  };
}

/**
 * The vendored set: every file reachable from ROOTS, each from the first upstream that has it.
 * @returns {{ files: Map<string, {bytes: Buffer, upstream: string}>, wellKnown: string[] }}
 */
export function vendoredSet(read) {
  const files = new Map();
  const wellKnown = new Set();
  const todo = [...ROOTS];
  while (todo.length > 0) {
    const path = todo.pop();
    if (files.has(path) || wellKnown.has(path)) continue;
    if (WELL_KNOWN.test(path)) {
      wellKnown.add(path);
      continue;
    }
    let found;
    for (const u of UPSTREAMS) {
      const bytes = read(u, path);
      if (bytes !== undefined) {
        found = { bytes, upstream: u.name };
        break;
      }
    }
    if (!found)
      throw new Error(
        `${path} is imported but none of ${UPSTREAMS.map((u) => u.name).join(', ')} has it at the pinned revision`,
      );
    files.set(path, found);
    todo.push(...importsOf(found.bytes.toString('utf8')));
  }
  return { files: new Map([...files].sort(([a], [b]) => (a < b ? -1 : 1))), wellKnown: [...wellKnown].sort() };
}

/** proto/upstream.json: where each vendored file comes from, with its git blob id. */
export function manifestOf(set) {
  return `${JSON.stringify(
    {
      comment:
        'Written by scripts/sync-protos.mjs: do not edit. Each file is byte for byte the upstream file at the revision named; blob is its git object id there.',
      roots: ROOTS,
      upstreams: UPSTREAMS.map(({ name, url, revision }) => ({ name, url, revision })),
      package: { name: PACKAGE.name, version: PACKAGE.version, integrity: PACKAGE.integrity },
      wellKnownImports: set.wellKnown,
      files: [...set.files].map(([path, f]) => ({ path, upstream: f.upstream, blob: blobId(f.bytes) })),
    },
    null,
    2,
  )}\n`;
}

/** Every file the sync writes under proto/, with its bytes. */
export function expectedOutput(set) {
  const out = new Map([...set.files].map(([p, f]) => [p, f.bytes]));
  out.set(MANIFEST, Buffer.from(manifestOf(set)));
  return out;
}

/** Paths the previous sync wrote (from its manifest), so that files no longer imported are removed. */
function previouslyWritten(out) {
  const m = join(out, MANIFEST);
  if (!existsSync(m)) return [];
  return JSON.parse(readFileSync(m, 'utf8')).files.map((f) => f.path);
}

function main() {
  const { values } = parseArgs({
    options: { check: { type: 'boolean' }, out: { type: 'string' }, git: { type: 'string', multiple: true } },
    strict: true,
  });
  const out = values.out ?? join(root, 'proto');
  let read;
  if (values.git) {
    const clones = {};
    for (const g of values.git) {
      const i = g.indexOf('=');
      if (i <= 0) throw new Error(`--git expects NAME=DIR, got ${JSON.stringify(g)}`);
      clones[g.slice(0, i)] = g.slice(i + 1);
    }
    read = gitReader(clones);
  } else {
    read = packageReader();
  }
  const expected = expectedOutput(vendoredSet(read));
  const stale = previouslyWritten(out).filter((p) => !expected.has(p));
  if (values.check) {
    const bad = [...stale.map((p) => `${p}: no longer imported`)];
    for (const [p, bytes] of expected) {
      const f = join(out, p);
      if (!existsSync(f)) bad.push(`${p}: missing`);
      else if (!readFileSync(f).equals(bytes)) bad.push(`${p}: differs`);
    }
    if (bad.length > 0) {
      process.stderr.write(
        `proto/ is not what scripts/sync-protos.mjs writes:\n  ${bad.join('\n  ')}\nrun: node scripts/sync-protos.mjs\n`,
      );
      process.exit(1);
    }
    process.stdout.write(`proto/: ${expected.size - 1} files as pinned\n`);
    return;
  }
  for (const p of stale) rmSync(join(out, p), { force: true });
  for (const [p, bytes] of expected) {
    mkdirSync(dirname(join(out, p)), { recursive: true });
    writeFileSync(join(out, p), bytes);
  }
  process.stdout.write(
    `proto/: wrote ${expected.size - 1} files and ${MANIFEST}${stale.length ? `, removed ${stale.length}` : ''}\n`,
  );
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`sync-protos: ${err.message}\n`);
    process.exit(1);
  }
}
