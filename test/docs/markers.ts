// The language of `<!-- test: … -->` markers: what a block claims and how it is checked.
// Kept small and plain so that marking a new block costs one line:
//
//   <!-- test: run -->                    run the shell commands; claims in `# → …` comments
//   <!-- test: run; serve -->             … with the quickstart served (its ports substituted)
//   <!-- test: run; file NAME = PATH -->  … with NAME in the working folder, a copy of PATH
//   <!-- test: output -->                 what the last command of the block above prints
//   <!-- test: config -->                 a config file or fragment, read by the service's schema
//   <!-- test: config; alternatives -->   each top-level line is a config of its own
//   <!-- test: envoy bootstrap -->        an Envoy bootstrap (test/envoy-validate)
//   <!-- test: envoy connection manager -->   keys of examples/envoy/envoy.yaml's HttpConnectionManager
//   <!-- test: envoy http filter -->      filters put before the router of examples/envoy/envoy.yaml
//   <!-- test: istio mesh config -->      an IstioOperator's meshConfig, or a bare MeshConfig
//   <!-- test: kubernetes -->             Kubernetes/Istio objects, by their schemas
//   <!-- test: helm values -->            values for helm/mcp-authz, rendered by `helm template`
//   <!-- test: promql -->                 PromQL read by promtool; metrics and labels the service has
//   <!-- test: rego -->                   Rego for the service's WASM runtime; its test_ rules pass
//   <!-- test: json -->                   JSON that parses
//   <!-- test: shape NAME -->             what the service answers in scenario NAME (test/docs/scenarios.ts)
//   <!-- test: usage -->                  command synopses, the same as the commands' --help
//   <!-- test: paths -->                  every repository path named exists
//   <!-- test: typescript; import … -->   TypeScript that type-checks with those imports
//   <!-- test: excerpt of PATH, … -->     each code line is in one of those files (comments aside)
//   <!-- test: skip — REASON -->          not run, and why
//
// A YAML kind may add `; from PATH`: the block is also a part of that file, unchanged.

export type EnvoyShape = 'bootstrap' | 'connection manager' | 'http filter';

export type Check =
  | { kind: 'skip'; reason: string }
  | { kind: 'run'; serve: boolean; files: Record<string, string> }
  | { kind: 'output' }
  | { kind: 'config'; alternatives: boolean; from?: string }
  | { kind: 'envoy'; shape: EnvoyShape; from?: string }
  | { kind: 'istio mesh config'; from?: string }
  | { kind: 'kubernetes'; from?: string }
  | { kind: 'helm values'; from?: string }
  | { kind: 'promql' }
  | { kind: 'rego' }
  | { kind: 'json' }
  | { kind: 'shape'; scenario: string; typesOnly: boolean }
  | { kind: 'usage' }
  | { kind: 'paths' }
  | { kind: 'typescript'; imports: string[] }
  | { kind: 'excerpt'; files: string[] };

export type Parsed = { check: Check } | { error: string };

const SKIP = /^skip\s*(?:—|–|-|:)\s*(.*)$/s;

export function parseMarker(marker: string): Parsed {
  const text = marker.replace(/\s+/g, ' ').trim();
  const skip = SKIP.exec(text);
  if (skip) {
    const reason = skip[1]!.trim();
    if (reason.split(' ').length < 3)
      return {
        error: `a skip needs its reason in words ("skip — needs a Kubernetes cluster"), got ${JSON.stringify(reason)}`,
      };
    return { check: { kind: 'skip', reason } };
  }
  if (/^skip\b/.test(text)) return { error: 'write a skip as "skip — the reason"' };
  const [head = '', ...clauses] = text.split(';').map((c) => c.trim());
  let from: string | undefined;
  const rest: string[] = [];
  for (const c of clauses) {
    const m = /^from (\S+)$/.exec(c);
    if (m) from = m[1]!;
    else rest.push(c);
  }
  const fromOk = (check: Check): Parsed => {
    if (
      from !== undefined &&
      !['config', 'envoy', 'istio mesh config', 'kubernetes', 'helm values'].includes(check.kind)
    )
      return { error: `"from" applies to YAML blocks, not to ${check.kind}` };
    return { check: from !== undefined ? ({ ...check, from } as Check) : check };
  };
  const none = (check: Check): Parsed =>
    rest.length ? { error: `${check.kind} takes no "${rest.join('; ')}"` } : fromOk(check);
  switch (head) {
    case 'run': {
      let serve = false;
      const files: Record<string, string> = {};
      for (const c of rest) {
        const file = /^file (\S+) = (\S+)$/.exec(c);
        if (c === 'serve') serve = true;
        else if (file) files[file[1]!] = file[2]!;
        else return { error: `run takes "serve" and "file NAME = PATH", not "${c}"` };
      }
      return fromOk({ kind: 'run', serve, files });
    }
    case 'output':
      return none({ kind: 'output' });
    case 'config': {
      const alternatives = rest.includes('alternatives');
      const others = rest.filter((c) => c !== 'alternatives');
      if (others.length) return { error: `config takes "alternatives" and "from PATH", not "${others.join('; ')}"` };
      return fromOk({ kind: 'config', alternatives });
    }
    case 'envoy bootstrap':
    case 'envoy connection manager':
    case 'envoy http filter':
      return none({ kind: 'envoy', shape: head.slice('envoy '.length) as EnvoyShape });
    case 'istio mesh config':
    case 'kubernetes':
    case 'helm values':
    case 'promql':
    case 'rego':
    case 'json':
    case 'usage':
    case 'paths':
      return none({ kind: head } as Check);
    case 'typescript': {
      const imports = rest.filter((c) => /^import\b/.test(c));
      if (imports.length !== rest.length) return { error: 'typescript takes "import … from \'…\'" clauses only' };
      return { check: { kind: 'typescript', imports } };
    }
  }
  const excerpt = /^excerpt of (.+)$/.exec(head);
  if (excerpt) return none({ kind: 'excerpt', files: excerpt[1]!.split(',').map((f) => f.trim()) });
  const shape = /^shape ([a-z0-9_-]+)$/.exec(head);
  if (shape) {
    const typesOnly = rest.includes('types');
    if (rest.some((c) => c !== 'types'))
      return { error: 'shape takes "types" (compare keys and types, not values) only' };
    return { check: { kind: 'shape', scenario: shape[1]!, typesOnly } };
  }
  return { error: `unknown marker "${head}": see test/docs/markers.ts for the kinds` };
}
