// The host side of OPA's WASM ABI: the imports a policy module calls (opa_abort,
// opa_println, opa_builtin0..4) and the dispatch of opa_builtinN to this service's builtins.
// Arguments are read with opa_value_dump, results written with opa_value_parse.
//
// Errors follow `opa eval` (non-strict): a builtin's error (BuiltinError) makes the call
// undefined. Anything else thrown is a defect of the builtin and fails the evaluation, so it
// surfaces as an error (a deny) instead of quietly becoming undefined.
import { REFUSED } from '../builtin-catalogue.mjs';
import { BUILTINS, type Builtin } from './index.js';
import { BuiltinError, parseValue, serializeValue, type Value } from './rego-value.js';

interface ModuleExports {
  opa_malloc: (n: number) => number;
  opa_value_dump: (addr: number) => number;
  opa_value_parse: (addr: number, len: number) => number;
}

/** What one evaluation shares between its builtin calls. */
export class EvalState {
  private nowValue: bigint | undefined;
  /** rand.intn's answers in this evaluation, by `str\0n`: the same call gives the same number (as OPA). */
  readonly randMemo = new Map<string, Value>();
  private randUsed = false;

  constructor(private readonly clock: () => bigint) {}

  /** Called before each evaluation; cheap: two assignments unless rand.intn was used. */
  begin(): void {
    this.nowValue = undefined;
    if (this.randUsed) {
      this.randMemo.clear();
      this.randUsed = false;
    }
  }

  /** The evaluation's time, read from the clock at its first use: one value per evaluation. */
  nowNs(): bigint {
    if (this.nowValue === undefined) this.nowValue = this.clock();
    return this.nowValue;
  }

  markRandUsed(): void {
    this.randUsed = true;
  }
}

const decoderLatin = new TextDecoder('latin1');

export class HostBuiltins {
  readonly state: EvalState;
  private exports: ModuleExports | undefined;
  /** Builtin id (the module's numbering) → implementation. */
  private table: (Builtin | undefined)[] = [];
  private names: string[] = [];

  constructor(
    private readonly memory: WebAssembly.Memory,
    clock: () => bigint,
  ) {
    this.state = new EvalState(clock);
  }

  imports(): Record<string, (...args: number[]) => number | void> {
    return {
      opa_abort: (addr: number) => {
        throw new Error(`policy aborted: ${this.cString(addr)}`);
      },
      // print() output: the service has no place for it per Check; it is dropped.
      opa_println: () => {},
      opa_builtin0: (id: number) => this.call(id, []),
      opa_builtin1: (id: number, _ctx: number, a: number) => this.call(id, [a]),
      opa_builtin2: (id: number, _ctx: number, a: number, b: number) => this.call(id, [a, b]),
      opa_builtin3: (id: number, _ctx: number, a: number, b: number, c: number) => this.call(id, [a, b, c]),
      opa_builtin4: (id: number, _ctx: number, a: number, b: number, c: number, d: number) =>
        this.call(id, [a, b, c, d]),
    };
  }

  /**
   * Resolves the builtins the module imports (its `builtins()` export: name → id). A module
   * that needs one this service does not provide is refused here, at load, never per Check.
   */
  bind(exports: ModuleExports, used: Record<string, number>): void {
    this.exports = exports;
    const missing: string[] = [];
    for (const [name, id] of Object.entries(used)) {
      const impl = BUILTINS.get(name);
      if (!impl) {
        const why = (REFUSED as Record<string, string>)[name];
        missing.push(why ? `${name} (${why})` : `${name} (not provided by mcp-authz)`);
        continue;
      }
      this.table[id] = impl;
      this.names[id] = name;
    }
    if (missing.length) {
      throw new Error(
        `the policy uses builtins mcp-authz does not provide: ${missing.join('; ')}. Rebuild it with mcp-authz policy build, which checks this at compile time (docs/policies.md#builtins)`,
      );
    }
  }

  private call(id: number, addrs: number[]): number {
    const impl = this.table[id];
    if (!impl) throw new Error(`the policy called an unknown builtin #${id}`);
    const args: Value[] = new Array(addrs.length);
    for (let i = 0; i < addrs.length; i++) args[i] = this.read(addrs[i]!);
    let out: Value | undefined;
    try {
      out = impl(args, this.state);
    } catch (err) {
      if (err instanceof BuiltinError) return 0;
      throw new Error(`builtin ${this.names[id]} failed: ${err instanceof Error ? err.message : String(err)}`);
    }
    return out === undefined ? 0 : this.write(out);
  }

  private read(addr: number): Value {
    const at = this.exports!.opa_value_dump(addr);
    const bytes = new Uint8Array(this.memory.buffer);
    const end = bytes.indexOf(0, at);
    return parseValue(bytes, at, end);
  }

  private write(v: Value): number {
    const x = this.exports!;
    const text = serializeValue(v);
    const at = x.opa_malloc(text.length);
    new Uint8Array(this.memory.buffer).set(text, at);
    const addr = x.opa_value_parse(at, text.length);
    if (addr === 0) throw new Error('the module could not read a builtin result');
    return addr;
  }

  private cString(addr: number): string {
    const bytes = new Uint8Array(this.memory.buffer);
    return decoderLatin.decode(bytes.subarray(addr, bytes.indexOf(0, addr)));
  }
}
