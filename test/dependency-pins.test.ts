// Dependencies whose internals the service reads are pinned exactly, and a release of them
// without those internals fails here, loudly, instead of turning Checks into 503s.
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadBundle } from '../src/policy/bundle-loader.js';
import { compileRego } from '../src/policy/rego-compiler.js';
import { WasmEngine } from '../src/policy/wasm-engine.js';
import { SHIPPED_BUNDLE } from '../src/config/paths.mjs';
import { ROOT } from './helpers/cli.js';
import { regoDir } from './helpers/policy.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
const installed = (name: string) => JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')).version as string;

test('opa-wasm, whose internals the direct evaluation reads, is pinned to an exact version, and that version has them', async (t) => {
  const pinned = pkg.dependencies['@open-policy-agent/opa-wasm'];
  t.regex(pinned, /^\d+\.\d+\.\d+$/, 'an exact version, not a range: a minor release may rename the fields');
  t.is(installed('@open-policy-agent/opa-wasm'), pinned);
  const engine = await WasmEngine.create(loadBundle(SHIPPED_BUNDLE), { entrypoint: 'mcp/authz/decision', maxMemoryPages: 64, data: {} });
  t.true(
    engine.direct,
    `opa-wasm ${pinned} no longer has wasmInstance.exports.opa_eval, mem, dataAddr and dataHeapPtr on its loaded policy: ` +
      'the engine would evaluate through the slower public evaluate. Update policyInternals in src/policy/wasm-engine.ts for this version.',
  );
});

test('without those internals the engine decides through opa-wasm\'s public evaluate, exactly as the direct evaluation does', async (t) => {
  const entrypoint = 'mcp/authz/decision';
  const bundle = await compileRego(
    regoDir({ 'p.rego': 'package mcp.authz\ndecision := {"allow": input.user == "ann", "n": count(input.items), "echo": input.s}\n' }),
    entrypoint,
  );
  const direct = await WasmEngine.create(bundle, { entrypoint, maxMemoryPages: 64, data: {} });
  const viaPublic = await WasmEngine.create(bundle, { entrypoint, maxMemoryPages: 64, data: {}, direct: false });
  t.true(direct.direct);
  t.false(viaPublic.direct);
  const inputs = [
    { user: 'ann', items: [1, 2, 3], s: 'héllo 😀 \u2028' },
    { user: 'bob', items: [], s: '' },
    { user: 'ann', items: Array.from({ length: 5000 }, (_, i) => i), s: 'x'.repeat(100_000) },
  ];
  for (const input of inputs) {
    const a = direct.evaluate(JSON.stringify(input));
    const b = viaPublic.evaluate(JSON.stringify(input));
    t.true(a.ok && b.ok);
    t.deepEqual(a.ok && a.resultSet, b.ok && b.resultSet);
  }
  const r = viaPublic.evaluate(JSON.stringify(inputs[0]));
  t.deepEqual(r.ok && r.resultSet, [{ result: { allow: true, n: 3, echo: 'héllo 😀 \u2028' } }]);
});

test('pino is used through its public API only: no pino.symbols in src/', (t) => {
  const offenders = (dir: string): string[] =>
    readdirSync(dir).flatMap((e) => {
      const p = join(dir, e);
      if (statSync(p).isDirectory()) return offenders(p);
      return /pino\.symbols|Symbol\.for\(['"]pino/.test(readFileSync(p, 'utf8')) ? [p] : [];
    });
  t.deepEqual(offenders(join(ROOT, 'src')), []);
});
