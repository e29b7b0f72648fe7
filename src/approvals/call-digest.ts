// The digest an approval is bound to: SHA-256 over the RFC 8785 canonical form of (principal,
// endpoint, method, tool, arguments, policy revision). The retried call must be the same call,
// by the same caller, under the same policy: any other argument, caller or revision is another
// digest and needs its own approval.
import { hash } from 'node:crypto';
import type { CheckContext } from '../decision/context.js';
import { CanonicalJsonError, canonicalJson, canonicalString } from '../contracts/jcs.js';

export interface BoundCall {
  /** Lower-case hex SHA-256. */
  digest: string;
  principal: string;
  endpoint: string;
  tool: string;
  /** The arguments' canonical JSON, as the approver sees them (before masking). */
  canonicalArguments: string;
}

export type Unbindable = { unbindable: string };

/** The principal as the digest names it: the authentication method and the stable id. */
export function principalName(method: string, id: string): string {
  return `${method}:${id}`;
}

/**
 * Binds a single tools/call read from a JSON-RPC body; anything else (a batch, another method,
 * a call read from headers only, arguments readers disagree on) says why it cannot be bound.
 */
export function bindCall(ctx: CheckContext, policyRevision: string): BoundCall | Unbindable {
  const { mcp } = ctx;
  if (mcp.batch || mcp.calls.length !== 1) return { unbindable: 'a batch cannot be approved: send the call alone' };
  const call = mcp.calls[0]!;
  if (call.method !== 'tools/call' || call.kind !== 'request' || call.name === undefined)
    return { unbindable: `only a tools/call request can be approved, not ${call.method || 'a response'}` };
  if (mcp.source !== 'body') return { unbindable: 'the call must carry its JSON-RPC body' };
  const args = call.arguments ?? {};
  let canonicalArguments: string;
  try {
    canonicalArguments = canonicalJson(args);
  } catch (err) {
    if (!(err instanceof CanonicalJsonError)) throw err;
    return {
      unbindable: `the argument ${err.path || '(top level)'} cannot be read one way by every MCP server (${describe(err.code)})`,
    };
  }
  const principal = principalName(ctx.principal.method, ctx.principal.id);
  const endpoint = ctx.endpoint?.name ?? '';
  const digest = callDigest(principal, endpoint, call.method, call.name, canonicalArguments, policyRevision);
  return { digest, principal, endpoint, tool: call.name, canonicalArguments };
}

/** SHA-256 of the canonical JSON of the six parts; the arguments are already canonical. */
export function callDigest(
  principal: string,
  endpoint: string,
  method: string,
  tool: string,
  canonicalArguments: string,
  policyRevision: string,
): string {
  // The members in RFC 8785 order ("arguments" < "endpoint" < "method" < "principal" < "revision" < "tool").
  const text = `{"arguments":${canonicalArguments},"endpoint":${canonicalString(endpoint)},"method":${canonicalString(method)},"principal":${canonicalString(principal)},"revision":${canonicalString(policyRevision)},"tool":${canonicalString(tool)}}`;
  // One-shot: no Hash object per call.
  return hash('sha256', text, 'hex');
}

function describe(code: CanonicalJsonError['code']): string {
  switch (code) {
    case 'unsafe_integer':
      return 'an integer beyond ±(2^53−1): JavaScript rounds it, Python and Java keep every digit';
    case 'non_finite_number':
      return 'a number beyond a 64-bit float';
    case 'lone_surrogate':
      return 'half a UTF-16 surrogate pair';
    default:
      return 'not JSON';
  }
}
