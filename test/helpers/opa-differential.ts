// Evaluates one Rego query on a batch of inputs twice: with the real `opa eval` (topdown, the
// reference) and with the service's WASM engine (the module built with the service's
// capabilities, its builtins provided by the host). Numbers are compared exactly.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { opaBinary } from '../../src/config/paths.mjs';
import { compileRego } from '../../src/policy/rego-compiler.js';
import { WasmEngine } from '../../src/policy/wasm-engine.js';
import { FloatNumber, parseJson, RegoSet, parseDecimal, type Value } from '../../src/policy/builtins/rego-value.js';

const run = promisify(execFile);

/** Writes a policy folder; returns it and a cleanup. */
export function policyDir(files: Record<string, string>): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-authz-diff-'));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** `opa eval` of `data.<path>` on input, with time.now_ns fixed; undefined when the result is undefined. */
export async function opaEval(
  dir: string,
  path: string,
  input: unknown,
  nowNs: bigint,
  data?: unknown,
  extraFiles: string[] = [],
): Promise<Value | undefined> {
  const inputFile = join(dir, 'input.json.txt');
  writeFileSync(inputFile, JSON.stringify(input));
  const args = [
    'eval',
    '-f',
    'json',
    '-d',
    join(dir, 'policy.rego'),
    ...extraFiles.flatMap((f) => ['-d', join(dir, f)]),
    '-i',
    inputFile,
  ];
  let dataDir: string | undefined;
  if (data !== undefined) {
    // Outside the policy folder, which the engine's build reads at the same time.
    dataDir = mkdtempSync(join(tmpdir(), 'mcp-authz-diff-data-'));
    writeFileSync(join(dataDir, 'data.json'), JSON.stringify(data));
    args.push('-d', join(dataDir, 'data.json'));
  }
  args.push(`data.${path.replaceAll('/', '.')} with time.now_ns as ${nowNs}`);
  const { stdout } = await run(opaBinary(), args, { maxBuffer: 256 << 20 }).finally(
    () => dataDir && rmSync(dataDir, { recursive: true, force: true }),
  );
  const out = parseJson(stdout) as { result?: { expressions: { value: Value }[] }[] };
  return out.result?.[0]?.expressions[0]?.value;
}

/** The same with the service's engine. */
export async function wasmEval(
  dir: string,
  path: string,
  input: unknown,
  nowNs: bigint,
  data: Record<string, unknown> = {},
): Promise<Value | undefined> {
  const bundle = await compileRego(dir, path);
  const engine = await WasmEngine.create(bundle, { entrypoint: path, maxMemoryPages: 4096, data, now: () => nowNs });
  const rs = parseJson(engine.evaluateText(JSON.stringify(input))) as Value[];
  if (rs.length === 0) return undefined;
  return (rs[0] as { result: Value }).result;
}

/** A value with numbers as canonical exact text and sets sorted, for deep equality. */
export function canonical(v: Value | undefined): unknown {
  if (v === undefined) return '<undefined>';
  if (typeof v === 'number' || typeof v === 'bigint' || v instanceof FloatNumber) {
    const d = parseDecimal(v instanceof FloatNumber ? v.text : String(v))!;
    let mant = d.mant;
    let exp = d.exp;
    while (mant !== 0n && mant % 10n === 0n) {
      mant /= 10n;
      exp++;
    }
    return `#${mant}e${mant === 0n ? 0 : exp}`;
  }
  if (Array.isArray(v)) return v.map(canonical);
  if (v instanceof RegoSet)
    return {
      $set: v.items
        .map(canonical)
        .map((x) => JSON.stringify(x))
        .sort(),
    };
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) o[k] = canonical((v as Record<string, Value>)[k]);
    return o;
  }
  return v;
}
