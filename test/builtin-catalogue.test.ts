// The one list of builtins (src/policy/builtin-catalogue.mjs) against the pinned opa, the
// host implementations, the capabilities file, the docs and policy build's refusal.
import test from 'ava';
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { opaBinary, WASM_CAPABILITIES } from '../src/config/paths.mjs';
import { availableBuiltins, COMPILED_AWAY, HOST, NATIVE, REFUSED } from '../src/policy/builtin-catalogue.mjs';
import { BUILTINS } from '../src/policy/builtins/index.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');

test('every builtin of the pinned opa is in exactly one group: compiled in, compiled away, provided, or refused', (t) => {
  const current = JSON.parse(execFileSync(opaBinary(), ['capabilities', '--current'], { encoding: 'utf8' })) as {
    builtins: { name: string }[];
  };
  const names = current.builtins.map((b) => b.name).sort();
  const groups = [...NATIVE, ...COMPILED_AWAY, ...HOST, ...Object.keys(REFUSED)];
  t.deepEqual([...groups].sort(), names);
  t.is(new Set(groups).size, groups.length, 'no builtin is in two groups');
});

test('each provided builtin has a host implementation, and nothing else is implemented', (t) => {
  t.deepEqual([...BUILTINS.keys()].sort(), [...HOST].sort());
});

test('the committed capabilities file allows exactly the available builtins', (t) => {
  const caps = JSON.parse(readFileSync(WASM_CAPABILITIES, 'utf8')) as { builtins: { name: string }[] };
  t.deepEqual(caps.builtins.map((b) => b.name).sort(), availableBuiltins());
});

test('docs/policies.md lists every provided and every refused builtin, with the reason', (t) => {
  const doc = readFileSync(join(ROOT, 'docs', 'policies.md'), 'utf8');
  for (const name of HOST) t.true(doc.includes(`\`${name}\``), `${name} is documented`);
  for (const [name, why] of Object.entries(REFUSED))
    t.true(doc.includes(`| \`${name}\` | ${why} |`), `${name} is documented as refused, with why`);
});

test('policy build refuses http.send and net.lookup_ip_addr, saying why, what is not available and what is', async (t) => {
  const src = mkdtempSync(join(tmpdir(), 'mcp-authz-refused-'));
  try {
    writeFileSync(
      join(src, 'policy.rego'),
      'package envoy.authz\n\nallow if http.send({"method": "get", "url": "http://x"}).status_code == 200\n\nallow if net.lookup_ip_addr("x")\n\nallow if semver.is_valid(input.v)\n',
    );
    const err = await run(process.execPath, [
      join(ROOT, 'scripts', 'policy-build.mjs'),
      '--src',
      src,
      '--out',
      join(src, 'b.tar.gz'),
      '--entrypoint',
      'envoy/authz/allow',
      '--force',
    ]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    t.truthy(err, 'the build fails');
    t.is(err!.code, 1);
    t.regex(
      err!.stderr,
      /the policy calls builtins mcp-authz does not provide:\n {2}http\.send: a network call per Check/,
    );
    t.regex(err!.stderr, /\n {2}net\.lookup_ip_addr: a DNS lookup per Check/);
    t.notRegex(err!.stderr, / {2}semver\.is_valid:/, 'a provided builtin is not reported');
    t.regex(err!.stderr, /Not available in mcp-authz: .*graphql\.parse.*http\.send/);
    t.regex(err!.stderr, /Available \(\d+\): .*io\.jwt\.decode_verify.*time\.now_ns/);
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
});
