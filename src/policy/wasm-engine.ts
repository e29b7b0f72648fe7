// One compiled policy, instantiated once with bounded memory, evaluated per Check.
// A failed evaluation (a trap, memory exhausted, an abort) is reported, never thrown.
//
// The module is instantiated here, against OPA's WASM ABI 1.2 (docs: OPA "WebAssembly"), rather
// than through an SDK: the builtins the module imports are this service's host builtins
// (./builtins/), called with their arguments and results in the module's own value text
// (opa_value_dump / opa_value_parse), which keeps sets apart from arrays and numbers exact.
import { BundleError, type Bundle } from './bundle-loader.js';
import { HostBuiltins, type EvalState } from './builtins/host.js';

export interface EngineOptions {
  entrypoint: string;
  /** The list visibility rule (docs/ext_proc.md), evaluated when the bundle has it. */
  visibleEntrypoint?: string;
  /** Maximum WASM memory in 64 KiB pages; a policy that needs more fails its evaluation. */
  maxMemoryPages: number;
  /** The data document (data.*) handed to the policy once, with setData. */
  data: Record<string, unknown>;
  /** The wall clock, in nanoseconds since the epoch, read once per evaluation (time.now_ns); tests fix it. */
  now?: () => bigint;
}

/** The exports of an OPA policy module (ABI 1.2) that the engine calls. */
interface PolicyExports {
  opa_eval: (
    reserved: number,
    entrypoint: number,
    data: number,
    input: number,
    inputLen: number,
    heap: number,
    format: number,
  ) => number;
  opa_malloc: (n: number) => number;
  opa_json_parse: (addr: number, len: number) => number;
  opa_json_dump: (addr: number) => number;
  opa_value_dump: (addr: number) => number;
  opa_value_parse: (addr: number, len: number) => number;
  opa_heap_ptr_get: () => number;
  opa_heap_ptr_set: (addr: number) => void;
  builtins: () => number;
  entrypoints: () => number;
  opa_wasm_abi_version: WebAssembly.Global;
  opa_wasm_abi_minor_version: WebAssembly.Global;
}

const PAGE = 65536;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const REQUIRED_EXPORTS = [
  'opa_eval',
  'opa_malloc',
  'opa_json_parse',
  'opa_json_dump',
  'opa_value_dump',
  'opa_value_parse',
  'opa_heap_ptr_get',
  'opa_heap_ptr_set',
  'builtins',
  'entrypoints',
  'opa_wasm_abi_version',
  'opa_wasm_abi_minor_version',
];

export type Evaluation =
  | { ok: true; resultSet: unknown; durationNs: number }
  | { ok: false; error: string; durationNs: number };

/** The wall clock in nanoseconds (millisecond resolution). */
export const wallClockNs = (): bigint => BigInt(Date.now()) * 1_000_000n;

export class WasmEngine {
  private constructor(
    private readonly exports: PolicyExports,
    private readonly dataAddr: number,
    private readonly dataHeapPtr: number,
    private readonly state: EvalState,
    private readonly entrypointId: number,
    /** The list visibility rule's entrypoint, when the bundle has one. */
    private readonly visibleId: number | undefined,
    readonly revision: string,
    readonly source: string,
    readonly memory: WebAssembly.Memory,
    /** The host builtins this policy calls. */
    readonly hostBuiltins: readonly string[],
  ) {}

  static async create(bundle: Bundle, opts: EngineOptions): Promise<WasmEngine> {
    let module: WebAssembly.Module;
    try {
      module = await WebAssembly.compile(bundle.wasm);
    } catch (err) {
      throw new BundleError(`policy.wasm in ${bundle.source} is not a valid WebAssembly module: ${describe(err)}`);
    }
    const exported = new Set(WebAssembly.Module.exports(module).map((e) => e.name));
    for (const name of REQUIRED_EXPORTS) {
      if (!exported.has(name)) {
        throw new BundleError(
          `policy.wasm in ${bundle.source} does not implement the OPA WASM ABI 1.2+ (no ${name} export); build it with opa build -t wasm`,
        );
      }
    }
    const memory = new WebAssembly.Memory({ initial: Math.min(opts.maxMemoryPages, 16), maximum: opts.maxMemoryPages });
    const host = new HostBuiltins(memory, opts.now ?? wallClockNs);
    let instance: WebAssembly.Instance;
    try {
      instance = await WebAssembly.instantiate(module, { env: { memory, ...host.imports() } });
    } catch (err) {
      throw new BundleError(`cannot instantiate policy.wasm from ${bundle.source}: ${describe(err)}`);
    }
    const x = instance.exports as unknown as PolicyExports;
    if (x.opa_wasm_abi_version.value !== 1 || !(Number(x.opa_wasm_abi_minor_version.value) >= 2)) {
      throw new BundleError(
        `policy.wasm in ${bundle.source} uses OPA WASM ABI ${x.opa_wasm_abi_version.value}.${x.opa_wasm_abi_minor_version.value}; 1.2 or later is required (rebuild with a current opa)`,
      );
    }
    const dump = (addr: number): unknown => {
      const at = x.opa_json_dump(addr);
      const bytes = new Uint8Array(memory.buffer);
      return JSON.parse(decoder.decode(bytes.subarray(at, bytes.indexOf(0, at))));
    };
    const used = dump(x.builtins()) as Record<string, number>;
    try {
      host.bind(x, used);
    } catch (err) {
      throw new BundleError(`policy.wasm in ${bundle.source}: ${describe(err)}`);
    }
    const entrypoints = dump(x.entrypoints()) as Record<string, number>;
    const id = entrypoints[opts.entrypoint];
    if (id === undefined) {
      throw new BundleError(
        `policy bundle ${bundle.source} has no entrypoint ${opts.entrypoint} (it has: ${Object.keys(entrypoints).join(', ') || 'none'})`,
      );
    }
    let dataAddr: number;
    try {
      // The data document sits at the bottom of the heap; every evaluation starts above it.
      const text = encoder.encode(JSON.stringify(opts.data));
      const raw = x.opa_malloc(text.length);
      new Uint8Array(memory.buffer).set(text, raw);
      dataAddr = x.opa_json_parse(raw, text.length);
      if (dataAddr === 0) throw new Error('the module could not parse the data document');
    } catch (err) {
      throw new BundleError(
        `cannot load the policy data into ${bundle.source} (raise policy.maxMemoryPages?): ${describe(err)}`,
      );
    }
    const visibleId = opts.visibleEntrypoint === undefined ? undefined : entrypoints[opts.visibleEntrypoint];
    return new WasmEngine(
      x,
      dataAddr,
      x.opa_heap_ptr_get(),
      host.state,
      id,
      visibleId,
      bundle.revision,
      bundle.source,
      memory,
      Object.keys(used).sort(),
    );
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

  /**
   * The entrypoint's result set as the module writes it (JSON text, numbers exact); throws
   * when the evaluation fails. For tools and tests that compare results digit for digit.
   */
  evaluateText(inputJson: string): string {
    return this.run(this.entrypointId, inputJson);
  }

  private evaluateAt(entrypointId: number, inputJson: string): Evaluation {
    const started = process.hrtime.bigint();
    try {
      const resultSet: unknown = JSON.parse(this.run(entrypointId, inputJson));
      return { ok: true, resultSet, durationNs: Number(process.hrtime.bigint() - started) };
    } catch (err) {
      return { ok: false, error: describe(err), durationNs: Number(process.hrtime.bigint() - started) };
    }
  }

  private run(entrypointId: number, inputJson: string): string {
    // Per evaluation: time.now_ns is read at its first call, rand.intn answers are remembered.
    this.state.begin();
    {
      const x = this.exports;
      const mem = this.memory;
      const len = Buffer.byteLength(inputJson);
      const addr = this.dataHeapPtr;
      const missing = addr + len - mem.buffer.byteLength;
      if (missing > 0) mem.grow(Math.ceil(missing / PAGE)); // RangeError beyond maxMemoryPages
      encoder.encodeInto(inputJson, new Uint8Array(mem.buffer, addr, len));
      const out = x.opa_eval(0, entrypointId, this.dataAddr, addr, len, addr + len, 0);
      const bytes = new Uint8Array(mem.buffer);
      const end = bytes.indexOf(0, out);
      return decoder.decode(bytes.subarray(out, end < 0 ? bytes.length : end));
    }
  }
}

// An abort is an Error with the module's message; a trap a RuntimeError; memory exhausted a RangeError.
function describe(err: unknown): string {
  if (err instanceof Error) return `${err.name}: ${err.message}`;
  return String(err);
}
