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
  /** WASM memory for evaluations in 64 KiB pages, above the data document's own; a policy that needs more fails its evaluation. */
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

/** WebAssembly's own ceiling for a 32-bit memory: 4 GiB. */
const MAX_PAGES = 65536;

interface Loaded {
  memory: WebAssembly.Memory;
  host: HostBuiltins;
  x: PolicyExports;
  used: Record<string, number>;
  id: number;
  entrypoints: Record<string, number>;
  dataAddr: number;
}

/** The data document could not be loaded (most often: it did not fit the memory bound given). */
class DataLoadFailed extends Error {
  constructor(
    private readonly source: string,
    private readonly cause_: string,
  ) {
    super(cause_);
  }
  bundleError(): BundleError {
    return new BundleError(`cannot load the policy data into ${this.source}: ${this.cause_}`);
  }
}

/** One instance of the module with at most maxPages of memory, its data document loaded. */
async function instantiate(
  module: WebAssembly.Module,
  bundle: Bundle,
  opts: EngineOptions,
  dataText: Uint8Array,
  maxPages: number,
): Promise<Loaded> {
  const memory = new WebAssembly.Memory({ initial: Math.min(maxPages, 16), maximum: maxPages });
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
    const raw = x.opa_malloc(dataText.length);
    new Uint8Array(memory.buffer).set(dataText, raw);
    dataAddr = x.opa_json_parse(raw, dataText.length);
    if (dataAddr === 0) throw new Error('the module could not parse the data document');
  } catch (err) {
    throw new DataLoadFailed(bundle.source, describe(err));
  }
  return { memory, host, x, used, id, entrypoints, dataAddr };
}

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
    // The data document is written once, at the bottom of the heap; the bound is for the
    // evaluations above it. When the data alone outgrows the bound (a large data.endpoints),
    // one probe instance without a bound measures the pages it takes, and the engine gets
    // those pages plus the bound.
    const dataText = encoder.encode(JSON.stringify(opts.data));
    let loaded: Loaded;
    try {
      loaded = await instantiate(module, bundle, opts, dataText, opts.maxMemoryPages);
    } catch (err) {
      if (!(err instanceof DataLoadFailed)) throw err;
      const probe = await instantiate(module, bundle, opts, dataText, MAX_PAGES).catch((e: unknown) => {
        throw e instanceof DataLoadFailed ? e.bundleError() : e;
      });
      const dataPages = Math.ceil(probe.x.opa_heap_ptr_get() / PAGE);
      loaded = await instantiate(
        module,
        bundle,
        opts,
        dataText,
        Math.min(MAX_PAGES, dataPages + opts.maxMemoryPages),
      ).catch((e: unknown) => {
        throw e instanceof DataLoadFailed ? e.bundleError() : e;
      });
    }
    const { memory, host, x, used, id, entrypoints, dataAddr } = loaded;
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
