// Maps a verified token's claims to the principal the policy sees.
import type { JWTPayload } from 'jose';
import type { IssuerConfig } from '../../config/schema.js';
import type { Principal } from '../../contracts/principal.js';

/** What a verified token says about its caller, apart from its claims: tokens of one identity share it. */
export interface TokenIdentity {
  readonly id: string;
  readonly issuer: string;
  readonly subject: string;
  readonly userId: string | undefined;
  readonly roles: readonly string[];
  readonly scopes: readonly string[];
}

const NO_PERMISSIONS = Object.freeze([]) as unknown as string[];

/** The identity a verified payload maps to, or a reason it cannot be one. */
export function tokenIdentity(
  issuer: IssuerConfig,
  payload: JWTPayload,
  sharedUserIds: boolean,
): TokenIdentity | string {
  // RFC 9068 requires sub; client-credentials tokens of some IdPs carry only client_id.
  const subject = stringClaim(payload.sub) ?? stringClaim(payload.client_id);
  if (!subject) return 'token has no sub claim';
  const claimed = stringClaim(claimAt(payload, issuer.userClaim));
  // A namespaced issuer's "alice" is "<issuer>#alice": never equal to a plain owner or another issuer's alice.
  const userId = claimed === undefined || sharedUserIds ? claimed : `${issuer.issuer}#${claimed}`;
  const roles = stringList(claimAt(payload, issuer.rolesClaim), false);
  const scopes = new Set<string>();
  for (const name of issuer.scopeClaims) {
    for (const scope of stringList(claimAt(payload, name), true)) scopes.add(scope);
  }
  return Object.freeze({
    id: `${issuer.issuer}#${subject}`,
    issuer: issuer.issuer,
    subject,
    userId,
    roles: Object.freeze(roles),
    scopes: Object.freeze([...scopes]),
  });
}

/**
 * The principal the policy sees: an identity and the token's own claims (which `claims`
 * becomes, frozen). Frozen: one request cannot change what the next one sees.
 */
export function identityPrincipal(identity: TokenIdentity, claims: Record<string, unknown>): Principal {
  const principal: Principal = {
    authenticated: true,
    method: 'oauth',
    id: identity.id,
    roles: identity.roles as string[],
    permissions: NO_PERMISSIONS,
    scopes: identity.scopes as string[],
    issuer: identity.issuer,
    subject: identity.subject,
    claims: Object.freeze(claims),
  };
  if (identity.userId !== undefined) principal.userId = identity.userId;
  if (identity.roles[0] !== undefined) principal.role = identity.roles[0];
  return Object.freeze(principal);
}

/** The principal for a verified payload, or a reason it cannot be one. */
export function tokenPrincipal(issuer: IssuerConfig, payload: JWTPayload, sharedUserIds: boolean): Principal | string {
  const identity = tokenIdentity(issuer, payload, sharedUserIds);
  return typeof identity === 'string' ? identity : identityPrincipal(identity, { ...payload });
}

/** A claim by name, or by dotted path when no claim has that exact name (`realm_access.roles`). */
function claimAt(payload: JWTPayload, name: string): unknown {
  if (Object.hasOwn(payload, name) || !name.includes('.'))
    return Object.hasOwn(payload, name) ? payload[name] : undefined;
  let value: unknown = payload;
  for (const part of name.split('.')) {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || !Object.hasOwn(value, part))
      return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

function stringClaim(value: unknown): string | undefined {
  return typeof value === 'string' && value.length > 0 ? value : undefined;
}

// `scope` is space-separated (RFC 8693 §4.2); `scp` and roles claims are arrays or one string.
function stringList(value: unknown, splitSpaces: boolean): string[] {
  if (typeof value === 'string') return (splitSpaces ? value.split(' ') : [value]).filter((s) => s.length > 0);
  if (Array.isArray(value)) return value.filter((s): s is string => typeof s === 'string' && s.length > 0);
  return [];
}
