// The folders of src/ form layers (docs/architecture.md): a folder imports only folders of
// its own layer or below, and no folder imports another that imports it back, directly or
// through others. Every import counts, type-only ones included.
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const SRC = resolve(import.meta.dirname, '..', 'src');

/** Layer of each folder of src/, lowest first: the table of docs/architecture.md. */
const LAYERS: Record<string, number> = {
  contracts: 0,
  grpc: 0,
  config: 1,
  endpoints: 2,
  request: 2,
  'mcp-response': 2,
  'oauth-client': 2,
  envoy: 3,
  decision: 3,
  log: 4,
  metrics: 4,
  tracing: 4,
  auth: 5,
  approvals: 5,
  limits: 5,
  upstream: 5,
  pins: 5,
  policy: 5,
  stores: 5,
  pipeline: 6,
  shadow: 6,
  authzen: 7,
  'ext-authz': 7,
  'ext-proc': 7,
  server: 8,
  cli: 9,
};

interface Edge {
  from: string;
  to: string;
  /** "src/a/x.ts → src/b/y.ts" */
  via: string;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sourceFiles(p);
    return /\.(ts|mjs)$/.test(name) ? [p] : [];
  });
}

/** Every relative module a file imports or re-exports (static, dynamic, type-only). */
function importsOf(text: string): string[] {
  const specs: string[] = [];
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)) specs.push(m[1]!);
  return specs;
}

const folderOf = (file: string) => relative(SRC, file).split('/')[0]!;

function folderEdges(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const target = resolve(dirname(file), spec);
      const from = folderOf(file);
      const to = folderOf(target);
      if (from !== to) edges.push({ from, to, via: `src/${relative(SRC, file)} → src/${relative(SRC, target)}` });
    }
  }
  return edges;
}

/** Tarjan's strongly connected components of a directed graph. */
function stronglyConnected(nodes: Iterable<string>, next: (n: string) => Iterable<string>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string) => {
    indexOf.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of next(v)) {
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
      }
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      out.push(component);
    }
  };
  for (const n of nodes) if (!indexOf.has(n)) visit(n);
  return out;
}

/** The import cycles between folders, each named by the imports that close it. */
function folderCycles(edges: Edge[]): string[] {
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    if (!graph.has(e.from)) graph.set(e.from, new Set());
    if (!graph.has(e.to)) graph.set(e.to, new Set());
    graph.get(e.from)!.add(e.to);
  }
  return stronglyConnected(graph.keys(), (n) => graph.get(n) ?? [])
    .filter((c) => c.length > 1)
    .map((c) => {
      const inside = new Set(c);
      const vias = edges.filter((e) => inside.has(e.from) && inside.has(e.to)).map((e) => `  ${e.via}`);
      return `folders ${[...c].sort().join(', ')} import each other:\n${[...new Set(vias)].join('\n')}`;
    });
}

test('no folder of src/ imports another that imports it back, directly or through others', (t) => {
  const cycles = folderCycles(folderEdges());
  t.deepEqual(cycles, [], cycles.join('\n'));
});

test('every folder imports only its own layer and the layers below', (t) => {
  const upward = folderEdges()
    .filter((e) => LAYERS[e.to]! > LAYERS[e.from]!)
    .map((e) => `${e.from} (layer ${LAYERS[e.from]}) imports ${e.to} (layer ${LAYERS[e.to]}): ${e.via}`);
  t.deepEqual(upward, [], upward.join('\n'));
});

test('src/grpc/ is a library: it imports no other folder of src/', (t) => {
  const out = folderEdges()
    .filter((e) => e.from === 'grpc')
    .map((e) => e.via);
  t.deepEqual(out, [], `src/grpc/ knows gRPC and HTTP/2, nothing of the product:\n${out.join('\n')}`);
});

test('every folder of src/ has a layer, and docs/architecture.md shows the same table', (t) => {
  const folders = readdirSync(SRC)
    .filter((n) => statSync(join(SRC, n)).isDirectory())
    .sort();
  t.deepEqual(
    folders,
    Object.keys(LAYERS).sort(),
    'a new folder needs its place in LAYERS and in docs/architecture.md',
  );
  const doc = readFileSync(resolve(SRC, '..', 'docs', 'architecture.md'), 'utf8');
  for (const [folder, layer] of Object.entries(LAYERS)) {
    t.regex(
      doc,
      new RegExp(`^\\| ${layer} \\|[^\\n]*\`src/${folder}/\``, 'm'),
      `docs/architecture.md puts src/${folder}/ in layer ${layer}`,
    );
  }
});

test('the cycle finder names the imports of a cycle through three folders, and passes a chain', (t) => {
  const edge = (from: string, to: string): Edge => ({ from, to, via: `src/${from}/x.ts → src/${to}/y.ts` });
  const cycles = folderCycles([edge('a', 'b'), edge('b', 'c'), edge('c', 'a'), edge('c', 'd')]);
  t.is(cycles.length, 1);
  t.regex(cycles[0]!, /folders a, b, c import each other/);
  t.regex(cycles[0]!, /src\/c\/x\.ts → src\/a\/y\.ts/);
  t.false(cycles[0]!.includes('src/d/'));
  t.deepEqual(folderCycles([edge('a', 'b'), edge('b', 'c')]), []);
});

test('the import reader sees type-only, re-export, side-effect and dynamic imports', (t) => {
  const text = [
    "import type { A } from '../a/a.js';",
    "export { B } from '../b/b.js';",
    "import '../c/c.js';",
    "const d = await import('../d/d.js');",
    "import { e } from 'node:fs';",
  ].join('\n');
  t.deepEqual(importsOf(text), ['../a/a.js', '../b/b.js', '../c/c.js', '../d/d.js']);
});
