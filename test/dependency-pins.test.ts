// The production dependencies carry no package the service does not load, and none whose
// internals it reads: a minor release of a dependency must not be able to turn Checks into 503s.
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ROOT } from './helpers/cli.js';

const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    return statSync(p).isDirectory() ? sources(p) : /\.(ts|mjs|js)$/.test(p) ? [p] : [];
  });
}

test('opa-wasm is a dev dependency only (the service instantiates the policy module itself), pinned for the measuring script', (t) => {
  t.false('@open-policy-agent/opa-wasm' in pkg.dependencies);
  t.is(pkg.devDependencies['@open-policy-agent/opa-wasm'], '1.10.0');
  const users = sources(join(ROOT, 'src')).filter((f) =>
    /from ['"]@open-policy-agent\/opa-wasm['"]|import\(['"]@open-policy-agent\/opa-wasm/.test(readFileSync(f, 'utf8')),
  );
  t.deepEqual(users, []);
});

test('every production dependency is imported by src/ (nothing ships unused)', (t) => {
  const text = sources(join(ROOT, 'src'))
    .map((f) => readFileSync(f, 'utf8'))
    .join('\n');
  const unused = Object.keys(pkg.dependencies).filter(
    (name) => !new RegExp(`['"]${name.replace(/[/.]/g, '\\$&')}(/[^'"]*)?['"]`).test(text),
  );
  t.deepEqual(unused, []);
});

test('pino is used through its public API only: no pino.symbols in src/', (t) => {
  const offenders = sources(join(ROOT, 'src')).filter((f) =>
    /pino\.symbols|Symbol\.for\(['"]pino/.test(readFileSync(f, 'utf8')),
  );
  t.deepEqual(
    offenders.map((f) => relative(ROOT, f)),
    [],
  );
});
