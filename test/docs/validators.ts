// The checks of the docs' configuration blocks, each with the real reader: the service's
// config schema, Envoy's and Istio's generated types (test/envoy-validate), the Kubernetes
// schemas, helm with the chart's values schema, promtool, opa, tsc. Each returns the problems
// it found in words (empty: the block is good).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { parse as parseYaml, parseAllDocuments, stringify } from 'yaml';
import { validateConfig, ConfigError } from '../../src/config/load.js';
import type { EnvoyShape } from './markers.js';

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { cwd?: string; input?: string } = {}): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      cmd,
      args,
      { cwd: opts.cwd, maxBuffer: 64 * 1024 * 1024, timeout: 300_000 },
      (err, stdout, stderr) => {
        if (err && typeof (err as { code?: unknown }).code !== 'number') {
          if ((err as { code?: unknown }).code === 'ENOENT')
            reject(new Error(`${cmd} is not installed (npm test's pretest installs it: scripts/install-tools.sh)`));
          else resolve({ code: 1, stdout, stderr: `${stderr}${(err as Error).message}` });
          return;
        }
        resolve({ code: err ? Number((err as { code: number }).code) : 0, stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });
}

const tmp = (prefix: string) => mkdtempSync(join(tmpdir(), `mcp-authz-docs-${prefix}-`));

/** YAML as the service reads it: a repeated key is an error. */
export function readYaml(text: string): unknown {
  return parseYaml(text, { uniqueKeys: true });
}

// ---------------------------------------------------------------------------------------
// The service's config

export function checkConfig(text: string, alternatives: boolean): string[] {
  const configs = alternatives
    ? text
        .split('\n')
        .filter((l) => l.trim() !== '' && !l.trim().startsWith('#'))
        .map((l) => l)
    : [text];
  const problems: string[] = [];
  for (const one of configs) {
    let raw: unknown;
    try {
      raw = readYaml(one) ?? {};
    } catch (err) {
      problems.push(`not valid YAML${alternatives ? ` (${one.trim()})` : ''}: ${(err as Error).message}`);
      continue;
    }
    try {
      // Every key is optional: a fragment is a config on its own. No environment variable applies.
      validateConfig(raw, 'the block', tmp('config'), {});
    } catch (err) {
      if (err instanceof ConfigError)
        problems.push(...err.problems.map((p) => (alternatives ? `${one.trim()}: ${p}` : p)));
      else throw err;
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// Envoy and Istio, read by their own generated types

export function envoyValidateBin(root: string): string {
  const bin = join(root, '.build', 'bin', 'envoy-validate');
  if (!existsSync(bin))
    throw new Error(
      'envoy-validate is not built: run `scripts/install-tools.sh envoy-validate` (npm test does it in pretest)',
    );
  return bin;
}

type Obj = Record<string, any>;

/** examples/envoy/envoy.yaml, and its HttpConnectionManager's typed_config. */
function baseBootstrap(root: string): { doc: Obj; hcm: Obj } {
  const doc = parseYaml(readFileSync(join(root, 'examples', 'envoy', 'envoy.yaml'), 'utf8')) as Obj;
  const hcm = doc.static_resources.listeners[0].filter_chains[0].filters.find(
    (f: Obj) => f.name === 'envoy.filters.network.http_connection_manager',
  ).typed_config;
  return { doc, hcm };
}

export async function checkEnvoy(root: string, text: string, shape: EnvoyShape): Promise<string[]> {
  let block: unknown;
  try {
    block = readYaml(text);
  } catch (err) {
    return [`not valid YAML: ${(err as Error).message}`];
  }
  let doc: Obj;
  if (shape === 'bootstrap') doc = block as Obj;
  else {
    const base = baseBootstrap(root);
    doc = base.doc;
    if (shape === 'connection manager') {
      if (!block || typeof block !== 'object' || Array.isArray(block))
        return ['a connection manager fragment is a mapping of HttpConnectionManager fields'];
      Object.assign(base.hcm, block);
    } else {
      const filters = Array.isArray(block) ? block : [block];
      const router = base.hcm.http_filters.findIndex((f: Obj) => f.name === 'envoy.filters.http.router');
      base.hcm.http_filters.splice(router, 0, ...filters);
    }
  }
  const file = join(tmp('envoy'), 'envoy.yaml');
  writeFileSync(file, stringify(doc));
  const r = await run(envoyValidateBin(root), ['bootstrap', file]);
  return r.code === 0 ? [] : [r.stderr.trim() || `envoy-validate exited ${r.code}`];
}

export async function checkMeshConfig(root: string, text: string): Promise<string[]> {
  let block: Obj;
  try {
    block = readYaml(text) as Obj;
  } catch (err) {
    return [`not valid YAML: ${(err as Error).message}`];
  }
  // `meshConfig:` as in istiod's Helm values or an IstioOperator's spec: read as an IstioOperator.
  const doc =
    block && Object.keys(block).length === 1 && 'meshConfig' in block
      ? { apiVersion: 'install.istio.io/v1alpha1', kind: 'IstioOperator', spec: block }
      : block;
  const file = join(tmp('mesh'), 'mesh.yaml');
  writeFileSync(file, stringify(doc));
  const r = await run(envoyValidateBin(root), ['istio-mesh', file]);
  return r.code === 0 ? [] : [r.stderr.trim()];
}

// ---------------------------------------------------------------------------------------
// Kubernetes objects and Helm values

export async function checkKubernetes(
  root: string,
  text: string,
  validateObject: (o: any) => Promise<void>,
): Promise<string[]> {
  const problems: string[] = [];
  const docs = parseAllDocuments(text);
  for (const d of docs) {
    if (d.errors.length) {
      problems.push(...d.errors.map((e) => e.message));
      continue;
    }
    const obj = d.toJS() as Obj | null;
    if (!obj) continue;
    try {
      await validateObject(obj);
    } catch (err) {
      problems.push((err as Error).message);
    }
    // An EnvoyFilter that inserts an HTTP filter: the filter is read by Envoy's types too.
    if (obj.kind === 'EnvoyFilter') {
      for (const p of obj.spec?.configPatches ?? []) {
        if (p.applyTo === 'HTTP_FILTER' && p.patch?.value)
          problems.push(
            ...(await checkEnvoy(root, stringify([p.patch.value]), 'http filter')).map(
              (x) => `configPatches HTTP_FILTER value: ${x}`,
            ),
          );
      }
    }
  }
  return problems;
}

export async function checkHelmValues(
  text: string,
  render: (valuesFile: string) => Promise<any[]>,
  validateObject: (o: any) => Promise<void>,
): Promise<string[]> {
  try {
    readYaml(text);
  } catch (err) {
    return [`not valid YAML: ${(err as Error).message}`];
  }
  const file = join(tmp('values'), 'values.yaml');
  writeFileSync(file, text);
  let objects: any[];
  try {
    objects = await render(file);
  } catch (err) {
    return [(err as Error).message];
  }
  const problems: string[] = [];
  for (const o of objects) {
    try {
      await validateObject(o);
    } catch (err) {
      problems.push(`rendered ${o.kind}: ${(err as Error).message}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// A part of a file

/**
 * Whether `part` is a part of `whole` somewhere inside it: at every level a mapping shows some
 * of the keys (with parts of their values) and a list some of the items, in order. A doc may
 * leave out what it does not discuss; what it shows must be as the file has it.
 */
export function containsTree(whole: unknown, part: unknown): boolean {
  if (isPart(whole, part)) return true;
  if (Array.isArray(whole)) return whole.some((w) => containsTree(w, part));
  if (whole && typeof whole === 'object') return Object.values(whole).some((w) => containsTree(w, part));
  return false;
}

function isPart(w: unknown, p: unknown): boolean {
  if (Array.isArray(p)) {
    if (!Array.isArray(w)) return false;
    let i = 0;
    for (const item of p) {
      while (i < w.length && !isPart(w[i], item)) i++;
      if (i++ >= w.length) return false;
    }
    return true;
  }
  if (p && typeof p === 'object') {
    if (!w || typeof w !== 'object' || Array.isArray(w)) return false;
    return Object.entries(p).every(([k, v]) => k in (w as Obj) && isPart((w as Obj)[k], v));
  }
  return isDeepStrictEqual(w, p);
}

export function checkFrom(root: string, text: string, from: string): string[] {
  const path = join(root, from);
  if (!existsSync(path)) return [`"from ${from}": no such file`];
  const whole = parseAllDocuments(readFileSync(path, 'utf8')).map((d) => d.toJS());
  const part = parseAllDocuments(text).map((d) => d.toJS());
  const missing = part.filter((p) => !whole.some((w) => containsTree(w, p)));
  return missing.length
    ? [`the block is not a part of ${from} as it stands (the two differ: update the one that is wrong)`]
    : [];
}

// ---------------------------------------------------------------------------------------
// PromQL

/** The expressions of a PromQL block: each starts at the beginning of a line; indented lines continue it. */
export function promqlExpressions(text: string, firstLine: number): { line: number; expr: string }[] {
  const out: { line: number; expr: string }[] = [];
  let cur: string[] = [];
  let start = 0;
  text.split('\n').forEach((l, i) => {
    if (l.trim() === '' || l.trim().startsWith('#') || !/^\s/.test(l)) {
      if (cur.length) out.push({ line: start, expr: cur.join('\n') });
      cur = [];
    }
    if (l.trim() !== '' && !l.trim().startsWith('#')) {
      if (!cur.length) start = firstLine + i;
      cur.push(l);
    }
  });
  if (cur.length) out.push({ line: start, expr: cur.join('\n') });
  return out;
}

export async function checkPromql(
  root: string,
  exprs: { line: number; expr: string }[],
  labelsOf: Map<string, Set<string>>,
): Promise<string[]> {
  const promtool = join(root, '.tools', 'bin', 'promtool');
  if (!existsSync(promtool))
    throw new Error('promtool is not installed: run `scripts/install-tools.sh promtool` (npm test does it in pretest)');
  const dir = tmp('promql');
  const problems: string[] = [];
  // One rule file per expression, so an error names its expression.
  for (const [i, { line, expr }] of exprs.entries()) {
    const file = join(dir, `e${i}.yaml`);
    writeFileSync(file, stringify({ groups: [{ name: 'docs', rules: [{ record: `docs:expr_${i}`, expr }] }] }));
    const r = await run(promtool, ['check', 'rules', file]);
    if (r.code !== 0)
      problems.push(
        `line ${line}: promtool: ${(r.stderr || r.stdout)
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('Checking'))
          .join(' ')}`,
      );
    problems.push(...metricProblems(expr, labelsOf).map((p) => `line ${line}: ${p}`));
  }
  return problems;
}

const FUNCTIONS = new Set([
  'sum',
  'rate',
  'irate',
  'increase',
  'histogram_quantile',
  'topk',
  'bottomk',
  'count',
  'min',
  'max',
  'avg',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
  'absent',
  'delta',
  'deriv',
  'clamp_min',
  'clamp_max',
  'abs',
  'time',
  'vector',
  'scalar',
  'label_replace',
  'count_over_time',
  'avg_over_time',
  'max_over_time',
  'min_over_time',
  'sum_over_time',
  'quantile',
  'stddev',
  'le',
]);

/** Every metric the expression reads exists in the service, with the labels it matches on. */
export function metricProblems(expr: string, labelsOf: Map<string, Set<string>>): string[] {
  const problems: string[] = [];
  const noStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const metrics: string[] = [];
  for (const m of noStrings.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(\s*\{([^}]*)\})?/g)) {
    const name = m[1]!;
    if (FUNCTIONS.has(name) || /^\d/.test(name)) continue;
    // Label names inside by (…) / without (…) and in matchers are handled below.
    const before = noStrings.slice(0, m.index);
    if (/\b(by|without|on|ignoring)\s*\([^)]*$/.test(before) || /\{[^}]*$/.test(before)) continue;
    if (!labelsOf.has(name)) {
      problems.push(`${name}: the service has no such metric`);
      continue;
    }
    metrics.push(name);
    for (const lm of (m[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
      if (!labelsOf.get(name)!.has(lm[1]!)) problems.push(`${name}{${lm[1]}}: the metric has no label ${lm[1]}`);
    }
  }
  for (const m of noStrings.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) {
    for (const label of m[1]!
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
      if (!metrics.some((name) => labelsOf.get(name)!.has(label)))
        problems.push(`by (${label}): no metric of the expression has the label ${label}`);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// Rego

export async function checkRego(root: string, text: string): Promise<string[]> {
  const opa = join(root, '.tools', 'bin', 'opa');
  if (!existsSync(opa)) throw new Error('opa is not installed: run `scripts/install-tools.sh opa`');
  const dir = tmp('rego');
  writeFileSync(join(dir, 'doc.rego'), text);
  // The builtins the service's WASM runtime provides (`policy build` checks with the same file).
  const capabilities = join(root, 'policies', 'wasm-capabilities.json');
  const check = await run(opa, ['check', '--strict', '--capabilities', capabilities, join(dir, 'doc.rego')]);
  if (check.code !== 0) return [`opa check --strict: ${(check.stderr || check.stdout).trim()}`];
  if (/^\s*test_\w+/m.test(text)) {
    const t = await run(opa, ['test', '--v0-compatible=false', dir]);
    if (t.code !== 0) return [`opa test: ${(t.stdout + t.stderr).trim()}`];
  }
  return [];
}

// ---------------------------------------------------------------------------------------
// The command synopses

export async function checkUsage(text: string, help: (args: string[]) => Promise<string>): Promise<string[]> {
  const problems: string[] = [];
  const top = norm(await help(['--help']));
  const shown = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = norm(raw.replace(/\s#.*$/, ''));
    if (!line) continue;
    const command = /^mcp-authz (serve|check|replay|keys create|login|policy build|policy test|pins)\b/.exec(line)?.[1];
    if (command === undefined) {
      // `mcp-authz --version`, `mcp-authz <command> --help`: as the top-level help says them.
      if (!top.includes(line)) problems.push(`"${line}": not in mcp-authz --help`);
      continue;
    }
    shown.set(command, [...(shown.get(command) ?? []), line]);
  }
  for (const [command, lines] of shown) {
    const usages = usagesOf(await help([...command.split(' '), '--help']));
    for (const line of lines)
      if (!usages.includes(line)) problems.push(`the doc: ${line}\n   --help: ${usages.join('\n           ')}`);
    for (const usage of usages)
      if (!lines.includes(usage) && !problems.some((p) => p.includes(usage)))
        problems.push(`the doc does not show: ${usage}`);
  }
  return problems;
}

const norm = (s: string) => s.replace(/\s+/g, ' ').trim();

/** The synopses of a command's --help: each usage form with its continuation lines, without "(npm run …)". */
export function usagesOf(help: string): string[] {
  const lines = help.split('\n');
  const start = lines.findIndex((l) => l.startsWith('usage: '));
  const forms: string[][] = [[lines[start]!.slice('usage: '.length)]];
  for (const l of lines.slice(start + 1)) {
    if (!/^\s+\S/.test(l) || /^\s+\(npm run/.test(l)) break;
    if (/^\s+mcp-authz /.test(l)) forms.push([l]);
    else forms.at(-1)!.push(l);
  }
  return forms.map((f) => norm(f.join(' ')));
}

// ---------------------------------------------------------------------------------------
// Repository paths

export function checkPaths(root: string, text: string): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const m of text.matchAll(
    /(?<![\w./-])((?:src|test|docs|examples|helm|policies|scripts|bench|proto)\/[\w./-]*[\w/])/g,
  )) {
    const p = m[1]!;
    if (seen.has(p)) continue;
    seen.add(p);
    if (!existsSync(join(root, p))) problems.push(`${p}: no such file or folder`);
  }
  if (seen.size === 0) problems.push('the block names no repository path');
  return problems;
}

// ---------------------------------------------------------------------------------------
// Code quoted from the source

/** Every code line of the block (its `//` comment and a final `;` aside) is part of a line of one of the files. */
export function checkExcerpt(root: string, text: string, files: string[]): string[] {
  const problems: string[] = [];
  const sources: string[] = [];
  for (const f of files) {
    if (!existsSync(join(root, f))) problems.push(`${f}: no such file`);
    else
      sources.push(
        ...readFileSync(join(root, f), 'utf8')
          .split('\n')
          .map((l) => l.trim()),
      );
  }
  for (const raw of text.split('\n')) {
    const line = raw
      .replace(/\s*\/\/.*$/, '')
      .trim()
      .replace(/;$/, '');
    if (!line) continue;
    if (!sources.some((s) => s.includes(line)))
      problems.push(`${JSON.stringify(line)} is in none of ${files.join(', ')}`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------
// TypeScript

export async function checkTypescript(
  root: string,
  snippets: { name: string; imports: string[]; text: string }[],
): Promise<Map<string, string[]>> {
  // Inside the checkout, so the snippets' imports resolve to its node_modules; one folder per run.
  mkdirSync(join(root, 'node_modules', '.cache'), { recursive: true });
  const dir = mkdtempSync(join(root, 'node_modules', '.cache', 'mcp-authz-docs-ts-'));
  const files: string[] = [];
  for (const s of snippets) {
    const file = join(dir, `${s.name}.ts`);
    // Each snippet a module of its own (top-level await, no clash between snippets).
    writeFileSync(file, `${s.imports.join(';\n')};\n${s.text}\nexport {};\n`);
    files.push(file);
  }
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
      },
      files: files.map((f) => f.slice(dir.length + 1)),
    }),
  );
  let r: Ran;
  try {
    r = await run(
      process.execPath,
      [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(dir, 'tsconfig.json')],
      { cwd: dir },
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const byFile = new Map<string, string[]>(snippets.map((s) => [s.name, []]));
  if (r.code !== 0) {
    for (const line of r.stdout.split('\n')) {
      const m = /^([\w.-]+)\.ts\((\d+),\d+\): (.*)$/.exec(line.trim());
      if (m && byFile.has(m[1]!))
        byFile
          .get(m[1]!)!
          .push(
            `line ${Number(m[2]) - 1 - (snippets.find((s) => s.name === m[1])!.imports.length - 1)} of the block: ${m[3]}`,
          );
      else if (line.trim()) for (const list of byFile.values()) list.push(line.trim());
    }
  }
  return byFile;
}
