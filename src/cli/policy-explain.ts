// `check --explain`: the policy's rule trace from the real `opa eval --explain`, on exactly the
// input the policy saw and the data the service gave it, read from the policy's .rego source.
// A bundle built by `opa build -t wasm` does not carry that source whole (its entrypoint is
// compiled into policy.wasm), so the source is the config's policy.rego folder, the folder
// the shipped bundle is built from, or a folder named with --rego.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { Config } from '../config/schema.js';
import { EndpointRegistry } from '../endpoints/registry.js';
import { opaBinary, SHIPPED_BUNDLE, SHIPPED_SOURCE } from '../config/paths.mjs';
import { scrubJson, scrubText } from '../policy/redact-attributes.js';

/** "query:1   | Eval …" or "/path/decision.rego:14   | …": a line of opa's trace. */
const TRACE_LINE = /^\S+:\d+\s/;

export type PolicySourceDir = { dir: string } | { missing: string };

export function policySourceDir(config: Config, regoFlag: string | undefined): PolicySourceDir {
  const policy = config.policy;
  if (regoFlag !== undefined) {
    const dir = resolve(regoFlag);
    return isDir(dir) ? { dir } : { missing: `--rego ${regoFlag} is not a folder` };
  }
  if (policy?.rego !== undefined) return { dir: policy.rego };
  const bundle = policy?.bundle ?? SHIPPED_BUNDLE;
  if (resolve(bundle) === SHIPPED_BUNDLE && isDir(SHIPPED_SOURCE)) return { dir: SHIPPED_SOURCE };
  return {
    missing: `the policy bundle ${bundle} does not carry its Rego source whole (opa build -t wasm compiles the entrypoint into policy.wasm): pass --rego DIR, the folder it was built from`,
  };
}

export interface PolicyExplanation {
  source: string;
  command: string;
  /** What opa computed from the source; compared with what the service's WASM decided. */
  result: unknown;
  agreesWithService: boolean;
  trace: string[];
}

/**
 * opa's trace of the policy on `input`. `secrets`: the request's credential strings, when the
 * input carries them (policy.rawCredentials): replaced in everything returned.
 */
export function explainPolicy(
  config: Config,
  source: string,
  input: unknown,
  serviceResult: unknown,
  mode = 'full',
  secrets: readonly string[] = [],
): PolicyExplanation {
  const entrypoint = config.policy?.entrypoint ?? 'mcp/authz/decision';
  const query = `data.${entrypoint.split('/').join('.')}`;
  // The data the service hands the policy besides the source's own data files.
  const endpoints = Object.fromEntries(
    new EndpointRegistry(config.endpoints).all.map(({ metadataPath: _m, ...e }) => [e.name, e]),
  );
  const work = mkdtempSync(join(tmpdir(), 'mcp-authz-explain-'));
  try {
    const dataFile = join(work, 'service-data.json');
    writeFileSync(dataFile, JSON.stringify({ ...(config.policy?.data ?? {}), endpoints }));
    const inputText = typeof input === 'string' ? input : JSON.stringify(input);
    const base = ['eval', '--ignore', '*_test.rego', '-d', source, '-d', dataFile, '--stdin-input'];
    const opa = opaBinary();
    const run = (args: string[]) => {
      try {
        return execFileSync(opa, args, {
          input: inputText,
          encoding: 'utf8',
          maxBuffer: 64 << 20,
          stdio: ['pipe', 'pipe', 'pipe'],
        });
      } catch (err) {
        const e = err as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
        if (e.code === 'ENOENT')
          throw new Error(
            `--explain needs opa: run scripts/install-tools.sh opa, put opa on PATH or set OPA (${opa} not found)`,
          );
        throw new Error(
          `opa eval on ${source} failed: ${scrubText((e.stderr || e.stdout || e.message).trim(), secrets)}`,
        );
      }
    };
    const evaluated = JSON.parse(run([...base, '--format', 'json', query])) as {
      result?: { expressions?: { value?: unknown }[] }[];
    };
    const result = scrubJson(evaluated.result?.[0]?.expressions?.[0]?.value ?? null, secrets);
    const lines = scrubText(run([...base, '--format', 'pretty', `--explain=${mode}`, query]), secrets)
      .replace(/\n+$/, '')
      .split('\n');
    // The pretty output ends with the result, given above as `result`: keep the trace lines.
    let end = lines.length;
    while (end > 0 && !TRACE_LINE.test(lines[end - 1]!)) end--;
    const trace = lines.slice(0, end);
    return {
      source,
      command: `opa eval --ignore '*_test.rego' -d ${source} -d service-data.json --stdin-input --format pretty --explain=${mode} ${query} < input.json  (service-data.json: the config's policy.data and endpoints; input.json: policy.input${secrets.length > 0 ? " with the credential headers' values, which policy.rawCredentials gives the policy and this output never shows" : ''})`,
      result,
      agreesWithService: isDeepStrictEqual(result, serviceResult),
      trace,
    };
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function isDir(p: string): boolean {
  try {
    return existsSync(p) && statSync(p).isDirectory();
  } catch {
    return false;
  }
}
