// The runtime in force when the endpoint set can change live (stores.endpoints: postgres,
// docs/stores.md). A change builds a whole new runtime off to the side and puts it here in one
// assignment; a call reads `current` once, when it starts, and keeps what it read to its end,
// so it sees the old endpoint set or the new one, never a mix.
import type { Runtime } from './runtime.js';

export class LiveRuntime {
  constructor(public current: Runtime) {}
}

/** The runtime a call starting now uses: the one in force, for a runtime that can change live. */
export function inForce(rt: Runtime): Runtime {
  return rt.live?.current ?? rt;
}
