// Every fenced block of the README (and the other top-level .md files), docs/, the chart's
// README and examples/*/README.md is run or validated, or says why not: a `<!-- test: … -->`
// marker above it names how (test/docs/markers.ts lists the kinds), and a block without one
// fails here. Shell commands
// run in a fresh working folder against the real CLI (and a real `serve` of the quickstart on
// free ports), config blocks go through the service's schema, Envoy and Istio blocks through
// their generated types, chart values through helm, PromQL through promtool, Rego through
// opa, JSON examples against what the service really answers. A failure names the block
// (file:line), the command, what the doc claims and what happened.
import test, { type ExecutionContext } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, stringify } from 'yaml';
import { AUTH_FAILURE_DETAILS, CODES, WITHHELD_REASONS } from '../src/contracts/codes.js';
import { renderChart, validateObject } from './helpers/helm.js';
import { headerMatches, matchPattern, parseAnswer, parsePattern } from './docs/json-pattern.js';
import { extractBlocks, where, type Block } from './docs/markdown.js';
import { parseMarker, type Check } from './docs/markers.js';
import { SCENARIOS } from './docs/scenarios.js';
import {
  brokenClaims,
  describe,
  parseClaims,
  parseShell,
  runCommands,
  transcriptDiff,
  type CommandResult,
} from './docs/shell.js';
import {
  checkConfig,
  checkEnvoy,
  checkExcerpt,
  checkFrom,
  checkHelmValues,
  checkKubernetes,
  checkMeshConfig,
  checkPaths,
  checkPromql,
  checkRego,
  checkTypescript,
  checkUsage,
  promqlExpressions,
  run,
} from './docs/validators.js';
import { makeWorkdir } from './docs/workdir.js';
import { waitFor } from './helpers/wait.js';

const ROOT = join(import.meta.dirname, '..');

/** The Markdown files whose blocks are checked. */
function docFiles(): string[] {
  const list = (dir: string, pick: (name: string) => boolean) =>
    existsSync(join(ROOT, dir))
      ? readdirSync(join(ROOT, dir))
          .filter(pick)
          .sort()
          .map((n) => `${dir}/${n}`)
      : [];
  const readmes = (dir: string) =>
    existsSync(join(ROOT, dir))
      ? readdirSync(join(ROOT, dir))
          .sort()
          .map((d) => `${dir}/${d}/README.md`)
          .filter((f) => existsSync(join(ROOT, f)))
      : [];
  return [
    ...list('.', (n) => n.endsWith('.md')).map((f) => f.slice(2)),
    ...list('docs', (n) => n.endsWith('.md')),
    ...readmes('helm'),
    ...readmes('examples'),
  ];
}

const problems: string[] = [];
const blocks: (Block & { check?: Check; error?: string })[] = [];
for (const file of docFiles()) {
  const found = extractBlocks(file, readFileSync(join(ROOT, file), 'utf8'));
  problems.push(...found.problems.map((p) => `${p.file}:${p.line}: ${p.message}`));
  for (const b of found.blocks) {
    if (b.marker === undefined) blocks.push(b);
    else {
      const parsed = parseMarker(b.marker);
      blocks.push('check' in parsed ? { ...b, check: parsed.check } : { ...b, error: parsed.error });
    }
  }
}

const CLAIM_WORDS = new Set<string>([
  ...Object.keys(CODES),
  ...Object.keys(AUTH_FAILURE_DETAILS),
  ...Object.keys(WITHHELD_REASONS),
  'allowed',
]);

// ---------------------------------------------------------------------------------------
// Shared: at most two blocks run processes at once; one quickstart `serve` for every block
// that needs it.

let slots = 2;
const waiting: (() => void)[] = [];
async function limited<T>(fn: () => Promise<T>): Promise<T> {
  while (slots === 0) await new Promise<void>((r) => waiting.push(r));
  slots--;
  try {
    return await fn();
  } finally {
    slots++;
    waiting.shift()?.();
  }
}

interface Served {
  child: ChildProcess;
  ports: Record<string, number>;
  logs: () => string;
}
let served: Promise<Served> | undefined;

/** `mcp-authz serve` on the quickstart's config, every listener on a free loopback port. */
function quickstartServe(): Promise<Served> {
  served ??= (async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-docs-serve-'));
    const config = parseYaml(readFileSync(join(ROOT, 'examples', 'quickstart', 'config.yaml'), 'utf8')) as Record<
      string,
      any
    >;
    const listen: Record<string, string> = {};
    for (const k of Object.keys(config.listen ?? {})) listen[k] = '127.0.0.1:0';
    config.listen = listen;
    config.apiKeys = { ...config.apiKeys, file: join(ROOT, 'examples', 'quickstart', config.apiKeys.file) };
    writeFileSync(join(dir, 'config.yaml'), stringify(config));
    const child = spawn(
      process.execPath,
      [join(ROOT, 'bin', 'mcp-authz.js'), 'serve', '--workers', '1', '--config', join(dir, 'config.yaml')],
      { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MCP_AUTHZ_LOG_LEVEL: 'info' } },
    );
    let logs = '';
    child.stderr!.on('data', (d) => (logs += d));
    let exited = false;
    child.on('exit', () => (exited = true));
    // Should the test process end without its after hook, the server goes with it.
    process.once('exit', () => child.kill('SIGKILL'));
    let ports: Record<string, number> | undefined;
    await waitFor(
      'the quickstart serve to start',
      () => {
        if (exited) throw new Error(`serve exited:\n${logs}`);
        const line = logs.split('\n').find((l) => l.includes('"mcp-authz serving"'));
        if (line) {
          const j = JSON.parse(line) as Record<string, number>;
          ports = { grpc: j.grpc!, http: j.http!, ...(j.extAuthzHttp ? { extAuthzHttp: j.extAuthzHttp } : {}) };
        }
        return ports !== undefined;
      },
      100_000,
      50,
    );
    return { child, ports: ports!, logs: () => logs };
  })();
  return served;
}

const workdirs: string[] = [];

test.after.always(async () => {
  for (const dir of workdirs) rmSync(dir, { recursive: true, force: true });
  if (!served) return;
  const s = await served.catch(() => undefined);
  if (!s || s.child.exitCode !== null) return;
  s.child.kill('SIGTERM');
  await new Promise((r) => s.child.once('exit', r));
});

/** The quickstart's documented addresses, pointed at the test's serve. */
function substitutePorts(text: string, s: Served): string {
  const quick = parseYaml(readFileSync(join(ROOT, 'examples', 'quickstart', 'config.yaml'), 'utf8')) as {
    listen: Record<string, string>;
  };
  let out = text;
  for (const [name, addr] of Object.entries(quick.listen)) {
    const port = addr.split(':').at(-1)!;
    const real = s.ports[name];
    if (real === undefined) continue;
    out = out.replace(new RegExp(`(127\\.0\\.0\\.1|localhost):${port}\\b`, 'g'), `127.0.0.1:${real}`);
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Shell blocks, and the `output` blocks that show what their last command prints

const results = new Map<Block, Promise<CommandResult[]>>();

function runBlock(b: Block & { check?: Check }): Promise<CommandResult[]> {
  let p = results.get(b);
  if (!p) {
    const check = b.check as Extract<Check, { kind: 'run' }>;
    p = limited(async () => {
      const commands = parseShell(b.text, b.textLine);
      const s = check.serve ? await quickstartServe() : undefined;
      const { dir, env } = makeWorkdir(ROOT, check.files);
      workdirs.push(dir);
      const toRun = commands.map((c) => ({ ...c, text: s ? substitutePorts(c.text, s) : c.text }));
      const ran = await runCommands(toRun, { cwd: dir, env, outDir: join(dir, '.docs-out'), deadlineMs: 300_000 });
      return ran.map((r, i) => ({ ...r, command: commands[i]! }));
    });
    results.set(b, p);
  }
  return p;
}

function commandReport(b: Block, r: CommandResult, what: string): string {
  const tail = (s: string) => {
    const lines = s.trimEnd().split('\n');
    return lines.length > 25
      ? [...lines.slice(0, 25), `… (${lines.length - 25} more lines)`].join('\n')
      : lines.join('\n');
  };
  return [
    `${b.file}:${r.command.line}: ${r.command.text}`,
    `  ${what}`,
    `  happened: ${describe(r)}`,
    r.stdout.trim() ? `  stdout:\n${tail(r.stdout)}` : '',
    r.stderr.trim() ? `  stderr:\n${tail(r.stderr)}` : '',
  ]
    .filter(Boolean)
    .join('\n');
}

async function checkRun(t: ExecutionContext, b: Block & { check?: Check }): Promise<void> {
  const ran = await runBlock(b);
  const failures: string[] = [];
  for (const r of ran) {
    const { command } = r;
    if (command.claims !== undefined) {
      let claims;
      try {
        claims = parseClaims(command.claims, CLAIM_WORDS);
      } catch (err) {
        failures.push(`${b.file}:${command.line}: ${(err as Error).message}`);
        continue;
      }
      const broken = brokenClaims(claims, r);
      if (broken.length)
        failures.push(commandReport(b, r, `claimed: ${command.claims} — not so: ${broken.join(', ')}`));
    } else if (command.expected === undefined && r.code !== 0) {
      failures.push(commandReport(b, r, 'claimed: success (no → claim), so exit 0'));
    }
    if (command.expected !== undefined) {
      const diff = transcriptDiff(command.expected, r.stdout);
      if (diff.length) failures.push(commandReport(b, r, `the transcript differs:\n    ${diff.join('\n    ')}`));
    }
  }
  t.log(`${ran.length} command(s) run`);
  if (failures.length) t.fail(`${where(b)}:\n${failures.join('\n\n')}`);
  else t.pass();
}

async function checkOutput(t: ExecutionContext, b: Block): Promise<void> {
  const before = blocks.filter((x) => x.file === b.file && x.line < b.line).at(-1);
  if (before?.check?.kind !== 'run') {
    t.fail(
      `${where(b)}: an output block follows the run block whose last command prints it; the block above is ${before ? `at line ${before.line}` : 'missing'}`,
    );
    return;
  }
  const ran = await runBlock(before);
  const last = ran.at(-1)!;
  const shown = b.text.trim();
  let diffs: string[];
  if (/^[[{]/.test(shown)) {
    let printed: unknown;
    try {
      printed = JSON.parse(last.stdout);
    } catch {
      t.fail(`${where(b)}: the doc shows JSON; ${last.command.text} printed:\n${last.stdout}`);
      return;
    }
    diffs = matchPattern(parsePattern(shown), printed);
  } else diffs = transcriptDiff(shown, last.stdout);
  if (diffs.length)
    t.fail(`${where(b)}: what ${b.file}:${last.command.line} prints differs from the doc:\n  ${diffs.join('\n  ')}`);
  else t.pass();
}

// ---------------------------------------------------------------------------------------
// Answers the service gives

async function checkShape(t: ExecutionContext, b: Block, scenario: string, typesOnly: boolean): Promise<void> {
  const make = SCENARIOS[scenario];
  if (!make) {
    t.fail(
      `${where(b)}: no scenario "${scenario}" in test/docs/scenarios.ts (there: ${Object.keys(SCENARIOS).join(', ')})`,
    );
    return;
  }
  const got = await limited(make);
  const shown = b.text.trim();
  const diffs: string[] = [];
  if ('answer' in got) {
    const answer = parseAnswer(shown);
    if (!answer) {
      t.fail(`${where(b)}: scenario ${scenario} is an HTTP answer: write it as "STATUS  {json}" and header lines`);
      return;
    }
    if (answer.status !== got.answer.status)
      diffs.push(`status: the doc shows ${answer.status}, the service answers ${got.answer.status}`);
    diffs.push(...matchPattern(answer.body, got.answer.body, { typesOnly }));
    for (const [name, value] of answer.headers) {
      const actual = got.answer.headers[name.toLowerCase()];
      if (!headerMatches(value, actual))
        diffs.push(
          `header ${name}: the doc shows ${JSON.stringify(value)}, the service sends ${actual === undefined ? 'none' : JSON.stringify(actual)}`,
        );
    }
  } else if ('json' in got) {
    diffs.push(...matchPattern(parsePattern(shown), got.json, { typesOnly }));
  } else {
    const want = shown.split('\n');
    if (want.length !== got.lines.length || want.some((l, i) => l !== got.lines[i]))
      diffs.push(`the doc shows:\n    ${want.join('\n    ')}\n  the service says:\n    ${got.lines.join('\n    ')}`);
  }
  if (diffs.length)
    t.fail(`${where(b)}: differs from what the service answers (scenario ${scenario}):\n  ${diffs.join('\n  ')}`);
  else t.pass();
}

// ---------------------------------------------------------------------------------------
// PromQL: the metrics and labels the service registers

let labelsOf: Promise<Map<string, Set<string>>> | undefined;
function serviceMetricLabels(): Promise<Map<string, Set<string>>> {
  labelsOf ??= (async () => {
    const { createMetricsRegistry } = await import('../src/metrics/registry.js');
    const { buildRuntime } = await import('../src/pipeline/build-runtime.js');
    const { silentLogger } = await import('../src/log/logger.js');
    const { loadConfigFile } = await import('../src/config/load.js');
    const registry = createMetricsRegistry();
    // Every optional part on, so every metric is registered: Redis (never reached), an issuer.
    const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-docs-metrics-'));
    const config = parseYaml(readFileSync(join(ROOT, 'examples', 'quickstart', 'config.yaml'), 'utf8')) as Record<
      string,
      any
    >;
    config.apiKeys.file = join(ROOT, 'examples', 'quickstart', 'keys.yaml');
    config.oauth = { issuers: [{ issuer: 'https://idp.example.com', jwksUri: 'https://idp.example.com/jwks' }] };
    writeFileSync(join(dir, 'config.yaml'), stringify(config));
    const rt = await buildRuntime(loadConfigFile(join(dir, 'config.yaml'), {}), silentLogger(), registry, {
      watch: false,
      sharedLimits: false,
      tracing: false,
    });
    await rt.close();
    const map = new Map<string, Set<string>>();
    for (const m of registry.getMetricsAsArray() as unknown as {
      name: string;
      labelNames?: string[];
      type?: string;
      constructor: { name: string };
    }[]) {
      const labels = new Set(m.labelNames ?? []);
      const type = String((m as { type?: unknown }).type ?? m.constructor.name).toLowerCase();
      if (type === 'histogram') {
        map.set(`${m.name}_bucket`, new Set([...labels, 'le']));
        map.set(`${m.name}_sum`, labels);
        map.set(`${m.name}_count`, labels);
      } else map.set(m.name, labels);
    }
    return map;
  })();
  return labelsOf;
}

// ---------------------------------------------------------------------------------------
// TypeScript blocks: one tsc for all of them

let tsResults: Promise<Map<string, string[]>> | undefined;
const tsName = (b: Block) => `${b.file.replace(/[^\w]/g, '_')}_${b.line}`;
function typescriptResults(): Promise<Map<string, string[]>> {
  tsResults ??= limited(() =>
    checkTypescript(
      ROOT,
      blocks
        .filter((b) => b.check?.kind === 'typescript')
        .map((b) => ({
          name: tsName(b),
          imports: (b.check as Extract<Check, { kind: 'typescript' }>).imports,
          text: b.text,
        })),
    ),
  );
  return tsResults;
}

// ---------------------------------------------------------------------------------------

const help = async (args: string[]) => {
  const r = await run(process.execPath, [join(ROOT, 'bin', 'mcp-authz.js'), ...args]);
  if (r.code !== 0) throw new Error(`mcp-authz ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
};

function report(t: ExecutionContext, b: Block, found: string[]): void {
  if (found.length) t.fail(`${where(b)}:\n  ${found.join('\n  ')}`);
  else t.pass();
}

const title = (b: Block & { check?: Check }) =>
  `${b.file}:${b.line} \`\`\`${b.lang || '(no language)'} — ${b.check ? (b.check.kind === 'skip' ? 'skipped' : b.check.kind === 'envoy' ? `envoy ${b.check.shape}` : b.check.kind === 'shape' ? `shape ${b.check.scenario}` : b.check.kind) : 'no marker'}`;

test('every test marker sits directly above a fenced block', (t) => {
  t.deepEqual(problems, []);
});

test('the docs have blocks, and the count of each kind', (t) => {
  const by = new Map<string, number>();
  for (const b of blocks) {
    const k = b.check?.kind ?? 'no marker';
    by.set(k, (by.get(k) ?? 0) + 1);
  }
  t.log(
    `${blocks.length} blocks in ${new Set(blocks.map((b) => b.file)).size} files: ${[...by].map(([k, n]) => `${k} ${n}`).join(', ')}`,
  );
  for (const b of blocks) if (b.check?.kind === 'skip') t.log(`skipped ${b.file}:${b.line}: ${b.check.reason}`);
  t.true(blocks.length > 0);
});

for (const b of blocks) {
  test(title(b), async (t) => {
    if (b.error !== undefined) return t.fail(`${where(b)}: the marker "${b.marker}" is not understood: ${b.error}`);
    const check = b.check;
    if (!check) {
      return t.fail(
        `${where(b)}: a \`\`\`${b.lang} block without a test marker. Say how it is checked, on the line above it — ` +
          '<!-- test: run -->, <!-- test: config -->, … (test/docs/markers.ts lists them) — or why it is not: <!-- test: skip — needs a Kubernetes cluster -->',
      );
    }
    const from = 'from' in check && check.from !== undefined ? checkFrom(ROOT, b.text, check.from) : [];
    switch (check.kind) {
      case 'skip':
        t.log(check.reason);
        return t.pass();
      case 'run':
        return checkRun(t, b);
      case 'output':
        return checkOutput(t, b);
      case 'config':
        return report(t, b, [...from, ...checkConfig(b.text, check.alternatives)]);
      case 'envoy':
        return report(t, b, [...from, ...(await limited(() => checkEnvoy(ROOT, b.text, check.shape)))]);
      case 'istio mesh config':
        return report(t, b, [...from, ...(await limited(() => checkMeshConfig(ROOT, b.text)))]);
      case 'kubernetes':
        return report(t, b, [...from, ...(await limited(() => checkKubernetes(ROOT, b.text, validateObject)))]);
      case 'helm values':
        return report(t, b, [
          ...from,
          ...(await limited(() =>
            checkHelmValues(b.text, async (f) => renderChart({ files: [f] }).objects, validateObject),
          )),
        ]);
      case 'promql':
        return report(
          t,
          b,
          await limited(async () =>
            checkPromql(ROOT, promqlExpressions(b.text, b.textLine), await serviceMetricLabels()),
          ),
        );
      case 'rego':
        return report(t, b, await limited(() => checkRego(ROOT, b.text)));
      case 'json':
        try {
          JSON.parse(b.text);
          return t.pass();
        } catch (err) {
          return t.fail(`${where(b)}: not JSON: ${(err as Error).message}`);
        }
      case 'shape':
        return checkShape(t, b, check.scenario, check.typesOnly);
      case 'usage':
        return report(t, b, await limited(() => checkUsage(b.text, help)));
      case 'paths':
        return report(t, b, checkPaths(ROOT, b.text));
      case 'typescript':
        return report(t, b, (await typescriptResults()).get(tsName(b)) ?? []);
      case 'excerpt':
        return report(t, b, checkExcerpt(ROOT, b.text, check.files));
    }
  });
}
