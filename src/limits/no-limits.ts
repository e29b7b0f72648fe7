import type { Limiter } from '../check/phases.js';

/** A limiter that limits nothing: used where rate limiting is switched off. */
export const noLimits: Limiter = {
  beforeAuth: () => undefined,
  authFailed: () => undefined,
  afterAuth: () => undefined,
};
