import type { EvalState } from './host.js';
import type { Value } from './rego-value.js';

/** A host builtin: returns its value, undefined for no value, or throws a BuiltinError (undefined too). */
export type Builtin = (args: Value[], state: EvalState) => Value | undefined;
