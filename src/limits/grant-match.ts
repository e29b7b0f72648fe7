// Grant patterns ("tools:delete_*", "*") matched in TypeScript, with the shipped policy's glob
// semantics (docs/policies.md "Glob semantics of grants"): "*" matches any sequence of
// characters, every other character is literal and compared exactly. Compiled once at load;
// a match is a few string comparisons, no regular expression.
import type { McpCall } from '../contracts/request.js';

export type CallKind = 'tools' | 'prompts' | 'resources';

/** Whether a pattern names a call of `kind` with target `target`. */
export type GrantMatcher = (kind: CallKind, target: string) => boolean;

export function compileGrant(grant: string): GrantMatcher {
  if (grant === '*') return () => true;
  const colon = grant.indexOf(':');
  const kind = grant.slice(0, colon);
  const parts = grant.slice(colon + 1).split('*');
  if (parts.length === 1) {
    const exact = parts[0]!;
    return (k, target) => k === kind && target === exact;
  }
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  const middle = parts.slice(1, -1).filter((p) => p !== '');
  return (k, target) => {
    if (k !== kind || target.length < first.length + last.length || !target.startsWith(first) || !target.endsWith(last))
      return false;
    // Literal runs between the stars, each found leftmost after the previous one, inside the part the ends leave.
    let at = first.length;
    const end = target.length - last.length;
    for (const p of middle) {
      const i = target.indexOf(p, at);
      if (i === -1 || i + p.length > end) return false;
      at = i + p.length;
    }
    return true;
  };
}

/**
 * The grant kind and target a call needs (tools/call, prompts/get, resources/read, as the
 * shipped policy reads them — notifications of those methods included), or undefined.
 */
export function callTarget(c: McpCall): { kind: CallKind; target: string } | undefined {
  if (c.kind === 'response') return undefined;
  if (c.method === 'tools/call' && c.name !== undefined) return { kind: 'tools', target: c.name };
  if (c.method === 'prompts/get' && c.name !== undefined) return { kind: 'prompts', target: c.name };
  if (c.method === 'resources/read' && c.uri !== undefined) return { kind: 'resources', target: c.uri };
  return undefined;
}
