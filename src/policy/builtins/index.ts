// The host builtins, by OPA name. src/policy/builtin-catalogue.mjs lists them (HOST); a test
// checks that the two agree.
import { cryptoBuiltins } from './crypto.js';
import { jwtBuiltins } from './jwt.js';
import { miscBuiltins } from './misc.js';
import { netBuiltins } from './net.js';
import { stringBuiltins } from './strings.js';
import { timeBuiltins } from './time.js';
import type { Builtin } from './types.js';

export type { Builtin };

export const BUILTINS: ReadonlyMap<string, Builtin> = new Map(
  Object.entries({
    ...cryptoBuiltins,
    ...jwtBuiltins,
    ...miscBuiltins,
    ...netBuiltins,
    ...stringBuiltins,
    ...timeBuiltins,
  }),
);
