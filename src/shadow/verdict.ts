// A policy's answer in the terms a shadow comparison counts: allow, deny or error, with the
// decision code. Shared by the shadow evaluator, `check --shadow` and `replay`, so all three
// compare the same way.
import type { VerdictKind } from '../decision/context.js';
import { isFailure, mapResultSet, type Mapped } from '../policy/decision-mapper.js';
import type { WasmEngine } from '../policy/wasm-engine.js';

export interface Verdict {
  decision: VerdictKind;
  /** The deny's code (the policy's own or the catalogue's); null for an allow. */
  code: string | null;
}

export function verdictOf(m: Mapped): Verdict {
  if (m.allow) return { decision: 'allow', code: null };
  return { decision: isFailure(m.reason) ? 'error' : 'deny', code: m.deny.code };
}

/** A recorded result (`result` of a decision record: the policy's value, `{error}` when it failed, absent when undefined). */
export function verdictOfResult(result: unknown, failed = false): Verdict {
  if (failed) return { decision: 'error', code: 'policy_error' };
  return verdictOf(mapResultSet(result === undefined ? [] : [{ result }]));
}

/** Evaluates `input` (JSON text) with an engine: never throws. */
export function evaluateVerdict(engine: WasmEngine, input: string): Verdict & { result: unknown } {
  try {
    const ev = engine.evaluate(input);
    if (!ev.ok) return { decision: 'error', code: 'policy_error', result: { error: ev.error } };
    const result = Array.isArray(ev.resultSet)
      ? (ev.resultSet[0] as { result?: unknown } | undefined)?.result
      : undefined;
    return { ...verdictOf(mapResultSet(ev.resultSet)), result };
  } catch (err) {
    return { decision: 'error', code: 'policy_error', result: { error: (err as Error).message } };
  }
}

export function differ(a: Verdict, b: Verdict): boolean {
  return a.decision !== b.decision || a.code !== b.code;
}
