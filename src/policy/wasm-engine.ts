// One compiled policy, instantiated once with bounded memory, evaluated per Check.
// A failed evaluation (a trap, memory exhausted, an abort) is reported, never thrown.
import { loadPolicy, type LoadedPolicy } from '@open-policy-agent/opa-wasm';
import { BundleError, type Bundle } from './bundle-loader.js';

export interface EngineOptions {
  entrypoint: string;
  /** The list visibility rule (docs/ext_proc.md), evaluated when the bundle has it. */
  visibleEntrypoint?: string;
  /** Maximum WASM memory in 64 KiB pages; a policy that needs more fails its evaluation. */
  maxMemoryPages: number;
  /** The data document (data.*) handed to the policy once, with setData. */
  data: Record<string, unknown>;
  /** false: always evaluate through opa-wasm's public evaluate (the path taken when its internals are not there). */
  direct?: boolean;
}

/**
 * The parts of opa-wasm's loaded policy the direct evaluation reads (ABI 1.2: one opa_eval
 * call). They are not opa-wasm's public API, so package.json pins opa-wasm exactly, the engine
 * checks them once at load, and without them it evaluates through the public evaluate.
 */
export interface PolicyInternals {
  wasmInstance: WebAssembly.Instance & { exports: { opa_eval: (reserved: number, entrypoint: number, data: number, input: number, inputLen: number, heap: number, format: number) => number } };
  mem: WebAssembly.Memory;
  dataAddr: number;
  dataHeapPtr: number;
}

/** opa-wasm's internals as the direct evaluation needs them, or undefined when this opa-wasm does not have them. */
export function policyInternals(policy: LoadedPolicy): PolicyInternals | undefined {
  const p = policy as unknown as Partial<PolicyInternals>;
  const ok =
    typeof p.wasmInstance?.exports?.opa_eval === 'function' &&
    p.mem instanceof WebAssembly.Memory &&
    Number.isSafeInteger(p.dataAddr) &&
    Number.isSafeInteger(p.dataHeapPtr);
  return ok ? (p as PolicyInternals) : undefined;
}

const PAGE = 65536;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export type Evaluation =
  | { ok: true; resultSet: unknown; durationNs: number }
  | { ok: false; error: string; durationNs: number };

export class WasmEngine {
  private constructor(
    private readonly policy: LoadedPolicy,
    private readonly entrypointId: number,
    /** The visibility rule's entrypoint, when the bundle has one. */
    private readonly visibleId: number | undefined,
    readonly revision: string,
    readonly source: string,
    readonly memory: WebAssembly.Memory,
    /** opa-wasm's internals, for the direct evaluation; undefined: its public evaluate. */
    private readonly internals: PolicyInternals | undefined,
  ) {}

  /** Whether evaluations write the input straight into the module's memory (else opa-wasm's evaluate). */
  get direct(): boolean {
    return this.internals !== undefined;
  }

  static async create(bundle: Bundle, opts: EngineOptions): Promise<WasmEngine> {
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(bundle.wasm);
    } catch (err) {
      throw new BundleError(`policy.wasm in ${bundle.source} is not a valid WebAssembly module: ${describe(err)}`);
    }
    const exported = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
    for (const name of ['opa_eval', 'opa_wasm_abi_version', 'opa_wasm_abi_minor_version', 'builtins', 'entrypoints']) {
      if (!exported.has(name)) {
        throw new BundleError(`policy.wasm in ${bundle.source} does not implement the OPA WASM ABI 1.2+ (no ${name} export); build it with opa build -t wasm`);
      }
    }
    let policy: LoadedPolicy;
    try {
      policy = await loadPolicy(module, { initial: Math.min(opts.maxMemoryPages, 16), maximum: opts.maxMemoryPages });
    } catch (err) {
      throw new BundleError(`cannot instantiate policy.wasm from ${bundle.source}: ${describe(err)}`);
    }
    if (!(Number(policy.minorVersion) >= 2)) {
      throw new BundleError(`policy.wasm in ${bundle.source} uses OPA WASM ABI 1.${policy.minorVersion}; 1.2 or later is required (rebuild with a current opa)`);
    }
    const entrypoints = policy.entrypoints as Record<string, number>;
    const id = entrypoints[opts.entrypoint];
    if (id === undefined) {
      throw new BundleError(`policy bundle ${bundle.source} has no entrypoint ${opts.entrypoint} (it has: ${Object.keys(entrypoints).join(', ') || 'none'})`);
    }
    try {
      policy.setData(opts.data);
    } catch (err) {
      throw new BundleError(`cannot load the policy data into ${bundle.source} (raise policy.maxMemoryPages?): ${describe(err)}`);
    }
    const visibleId = opts.visibleEntrypoint === undefined ? undefined : entrypoints[opts.visibleEntrypoint];
    const internals = opts.direct === false ? undefined : policyInternals(policy);
    return new WasmEngine(policy, id, visibleId, bundle.revision, bundle.source, policy.mem, internals);
  }

  /**
   * Evaluates the entrypoint on one input, given as JSON text. The text is encoded straight
   * into the module's memory (after the data document) and the result read from there: one
   * opa_eval call of ABI 1.2, as opa-wasm's evaluate does, without its intermediate
   * ArrayBuffer, copy and per-call decoder.
   */
  evaluate(inputJson: string): Evaluation {
    return this.evaluateAt(this.entrypointId, inputJson);
  }

  /** Whether the bundle has the list visibility rule. */
  get hasVisible(): boolean {
    return this.visibleId !== undefined;
  }

  /** Evaluates the list visibility rule; undefined when the bundle has none. */
  evaluateVisible(inputJson: string): Evaluation | undefined {
    return this.visibleId === undefined ? undefined : this.evaluateAt(this.visibleId, inputJson);
  }

  private evaluateAt(entrypointId: number, inputJson: string): Evaluation {
    const started = process.hrtime.bigint();
    try {
      const p = this.internals;
      if (p === undefined) {
        const input = encoder.encode(inputJson);
        const resultSet: unknown = this.policy.evaluate(input.buffer, entrypointId);
        return { ok: true, resultSet, durationNs: Number(process.hrtime.bigint() - started) };
      }
      const len = Buffer.byteLength(inputJson);
      const addr = p.dataHeapPtr;
      const missing = addr + len - p.mem.buffer.byteLength;
      if (missing > 0) p.mem.grow(Math.ceil(missing / PAGE)); // RangeError beyond maxMemoryPages
      encoder.encodeInto(inputJson, new Uint8Array(p.mem.buffer, addr, len));
      const out = p.wasmInstance.exports.opa_eval(0, entrypointId, p.dataAddr, addr, len, addr + len, 0);
      const bytes = new Uint8Array(p.mem.buffer);
      const end = bytes.indexOf(0, out);
      const resultSet: unknown = JSON.parse(decoder.decode(bytes.subarray(out, end < 0 ? bytes.length : end)));
      return { ok: true, resultSet, durationNs: Number(process.hrtime.bigint() - started) };
    } catch (err) {
      return { ok: false, error: describe(err), durationNs: Number(process.hrtime.bigint() - started) };
    }
  }
}

// opa-wasm throws plain strings (aborts) as well as Errors (traps, RangeError on memory).
function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
