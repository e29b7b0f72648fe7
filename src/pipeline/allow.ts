// The allow sent upstream, assembled from what the Check learned: identity headers the MCP
// server can trust, the policy's additions, and the removals that keep credentials and
// forged identities from reaching it. Pure: the same context and result give the same allow.
import type { CheckContext } from '../decision/context.js';
import type { AuthzAllow, UpstreamGrant } from '../decision/phases.js';
import type { Config } from '../config/schema.js';
import type { Allow, HeaderToSet } from '../contracts/outcome.js';
import type { Principal } from '../contracts/principal.js';
import { IDENTITY_HEADER_NAMES } from '../contracts/upstream-headers.js';
import { rawParamNames } from '../request/remove-query-params.js';
const IDENTITY_HEADER_SET: ReadonlySet<string> = new Set(IDENTITY_HEADER_NAMES);

/** An authorization that adds nothing (a dry-run allow). */
export const NOTHING_TO_ADD: AuthzAllow = Object.freeze({
  allow: true,
  headers: [],
  headersToRemove: [],
  responseHeaders: [],
}) as AuthzAllow;

/** The identity headers the MCP server receives on an allowed request; always replace client copies. */
export function identityHeaders(p: Principal): HeaderToSet[] {
  const out: HeaderToSet[] = [{ name: 'x-mcp-auth-method', value: p.method, append: false }];
  if (p.method !== 'anonymous') out.push({ name: 'x-mcp-principal', value: p.id, append: false });
  if (p.userId !== undefined) out.push({ name: 'x-mcp-user-id', value: p.userId, append: false });
  if (p.keyId !== undefined) out.push({ name: 'x-mcp-key-id', value: p.keyId, append: false });
  return out;
}

export function assembleAllow(
  ctx: CheckContext,
  authz: AuthzAllow,
  reason: Allow['reason'],
  config: Pick<Config, 'upstream' | 'apiKeys'>,
  upstream?: UpstreamGrant,
): Allow {
  const out: Allow = {
    kind: 'allow',
    allow: true,
    status: 200,
    headers: [...identityHeaders(ctx.principal), ...authz.headers],
    headersToRemove: [...authz.headersToRemove],
    queryParamsToRemove: [...(authz.queryParamsToRemove ?? [])],
    responseHeaders: authz.responseHeaders,
    reason,
  };
  if (authz.dynamicMetadata) out.dynamicMetadata = authz.dynamicMetadata;
  // A client can never forge an identity: identity headers not set here are removed.
  for (const name of IDENTITY_HEADER_NAMES) {
    if (!out.headers.some((h) => h.name === name)) out.headersToRemove.push(name);
  }
  const removeCredentials = config.upstream.removeCredentials;
  if (removeCredentials) {
    out.headersToRemove.push(...ctx.credentialHeaders);
    // Envoy removes a parameter by its name as written: every spelling of the credential goes.
    if (ctx.credentialQueryParams.length > 0)
      out.queryParamsToRemove.push(...rawParamNames(ctx.request.rawQuery, ctx.credentialQueryParams));
    if (ctx.credentialHeaderRewrites) out.headers.push(...ctx.credentialHeaderRewrites);
  }
  const upstreamSet = upstream?.headers;
  if (upstreamSet !== undefined) withUpstreamCredential(out, upstreamSet);
  // CGI and WSGI servers read "x_mcp_user_id" as X-MCP-User-Id: such spellings of identity,
  // credential and upstream credential headers are removed too.
  for (const name in ctx.request.headers) {
    if (!name.includes('_')) continue;
    const dashed = name.replaceAll('_', '-');
    if (
      IDENTITY_HEADER_SET.has(dashed) ||
      (removeCredentials && dashed === config.apiKeys.header) ||
      setsHeader(upstreamSet, dashed)
    )
      out.headersToRemove.push(name);
  }
  // A header both set and removed is removed: Envoy's ext_authz applies removals after the
  // sets, its ext_proc before them, so the answer never asks both of one header.
  if (out.headers.some((h) => out.headersToRemove.includes(h.name)))
    out.headers = out.headers.filter((h) => !out.headersToRemove.includes(h.name));
  return out;
}

/**
 * The upstream's own credential replaces whatever the client or the policy put in its
 * headers (the caller's Authorization, a forged identity header): set, never removed.
 * In place, without allocating: this runs on every allow of such an endpoint.
 */
function withUpstreamCredential(out: Allow, set: readonly HeaderToSet[]): void {
  const headers = out.headers;
  let j = 0;
  for (let i = 0; i < headers.length; i++) if (!setsHeader(set, headers[i]!.name)) headers[j++] = headers[i]!;
  if (j !== headers.length) headers.length = j;
  for (let i = 0; i < set.length; i++) headers.push(set[i]!);
  const removed = out.headersToRemove;
  j = 0;
  for (let i = 0; i < removed.length; i++) if (!setsHeader(set, removed[i]!)) removed[j++] = removed[i]!;
  if (j !== removed.length) removed.length = j;
}

function setsHeader(set: readonly HeaderToSet[] | undefined, name: string): boolean {
  if (set === undefined) return false;
  for (let i = 0; i < set.length; i++) if (set[i]!.name === name) return true;
  return false;
}
