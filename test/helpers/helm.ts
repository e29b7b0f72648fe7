// Runs the real helm binary on the chart and validates rendered objects against the
// Kubernetes (and prometheus-operator, Istio) schemas shipped by kubernetes-models.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CHART = join(ROOT, 'helm', 'mcp-authz');
export const CI_VALUES = ['default', 'ha', 'redis', 'existing-secret', 'istio', 'tls', 'upstream', 'secret-files'].map(
  (n) => join(CHART, 'ci', `${n}-values.yaml`),
);
// A helm built with `go install` reports Kubernetes v1.20 by default; render for a current one.
const KUBE_VERSION = '1.30.0';

/** The helm binary: ./.tools/bin/helm (scripts/install-tools.sh helm) or one on PATH. */
export function helmBin(opts: { root?: string; path?: string } = {}): string {
  const pinned = join(opts.root ?? ROOT, '.tools', 'bin', 'helm');
  if (existsSync(pinned)) return pinned;
  for (const dir of (opts.path ?? process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, 'helm'))) return join(dir, 'helm');
  }
  throw new Error(
    'helm is not installed: run `scripts/install-tools.sh helm` (npm test does it in pretest) or put helm v3 on PATH',
  );
}

export function helm(args: string[]): string {
  try {
    return execFileSync(helmBin(), args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      maxBuffer: 64 * 1024 * 1024,
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`helm ${args.join(' ')} failed:\n${e.stderr || e.message}`);
  }
}

export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: any;
};

export interface Rendered {
  objects: K8sObject[];
  get(kind: string, name?: string): K8sObject | undefined;
  all(kind: string): K8sObject[];
}

/** `helm template` with values files and --set pairs; returns the parsed objects. */
export function renderChart(
  opts: {
    files?: string[];
    set?: Record<string, string | number | boolean>;
    setJson?: Record<string, unknown>;
    namespace?: string;
  } = {},
): Rendered {
  const args = ['template', 'mcp', CHART, '--namespace', opts.namespace ?? 'mcp', '--kube-version', KUBE_VERSION];
  for (const f of opts.files ?? []) args.push('-f', f);
  for (const [k, v] of Object.entries(opts.set ?? {})) args.push('--set', `${k}=${v}`);
  for (const [k, v] of Object.entries(opts.setJson ?? {})) args.push('--set-json', `${k}=${JSON.stringify(v)}`);
  const objects = parseAllDocuments(helm(args))
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
  const all = (kind: string) => objects.filter((o) => o.kind === kind);
  return {
    objects,
    all,
    get: (kind, name) => all(kind).find((o) => name === undefined || o.metadata.name === name),
  };
}

/** Throws with the schema's message when `obj` is not a valid object of its apiVersion/kind. */
export async function validateObject(obj: K8sObject): Promise<void> {
  const [group, version] = obj.apiVersion.includes('/') ? obj.apiVersion.split('/') : [undefined, obj.apiVersion];
  let spec: string;
  if (group === undefined) spec = `kubernetes-models/${version}/${obj.kind}`;
  else if (group === 'monitoring.coreos.com')
    spec = `@kubernetes-models/prometheus-operator/${group}/${version}/${obj.kind}`;
  else if (group.endsWith('istio.io')) spec = `@kubernetes-models/istio/${group}/${version}/${obj.kind}`;
  else spec = `kubernetes-models/${group}/${version}/${obj.kind}`;
  let mod: Record<string, new (data: unknown) => { validate(): void }>;
  try {
    mod = await import(spec);
  } catch {
    throw new Error(`no schema for ${obj.apiVersion} ${obj.kind} (${spec})`);
  }
  const Model = mod[obj.kind];
  if (!Model) throw new Error(`no model ${obj.kind} in ${spec}`);
  try {
    new Model(obj).validate();
  } catch (err) {
    throw new Error(`${obj.kind}/${obj.metadata?.name}: ${(err as Error).message}`);
  }
}

/**
 * NOTES.txt as `helm install` would print it. `helm install --dry-run` needs a cluster, so
 * render a copy of the chart with one extra template that includes the notes.
 */
export function renderNotes(files: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-chart-'));
  try {
    cpSync(CHART, dir, { recursive: true });
    writeFileSync(
      join(dir, 'templates', 'zz-notes.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: notes }\ndata:\n  notes: {{ include "mcp-authz/templates/NOTES.txt" . | quote }}\n',
    );
    const args = [
      'template',
      'mcp',
      dir,
      '--namespace',
      'mcp',
      '--kube-version',
      KUBE_VERSION,
      '--show-only',
      'templates/zz-notes.yaml',
    ];
    for (const f of files) args.push('-f', f);
    const [doc] = parseAllDocuments(helm(args)).map((d) => d.toJS() as K8sObject);
    return doc!.data.notes as string;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
