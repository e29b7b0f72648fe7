// The principal an AuthZEN subject names (docs/authzen.md): the same principal a Check makes
// for the same caller, so that a policy cannot tell the two apart. An API key is named by its
// id and read from the key registry (its grants are the registry's, never the asker's); a
// token's subject comes with the claims the asking gateway verified, mapped by the issuer's
// settings as a verified token's are; a workload is named by its SPIFFE ID.
import type { Config } from '../config/schema.js';
import type { AuthFailureDetail } from '../contracts/codes.js';
import type { Principal } from '../contracts/principal.js';
import { parseSpiffeId } from '../contracts/spiffe-id.js';
import type { ApiKeyRecord, KeyLookup } from './key-registry.js';
import { sharesUserIds } from './oauth/jwt-verifier.js';
import { tokenPrincipal } from './oauth/token-principal.js';

export type SubjectResult = { ok: true; principal: Principal } | { ok: false; detail: AuthFailureDetail; why: string };

export class SubjectPrincipals {
  constructor(
    /** The keys in force: the file registry looks keys up by id; a store that cannot is said so. */
    private readonly keys: { readonly current: KeyLookup & { byId?(id: string): ApiKeyRecord | undefined } },
    private readonly oauth: Config['oauth'],
    private readonly now: () => number = Date.now,
  ) {}

  /** An API key by its id, as the registry in force holds it. */
  apiKey(id: string): SubjectResult {
    const keys = this.keys.current;
    if (typeof keys.byId !== 'function')
      return {
        ok: false,
        detail: 'key_unknown',
        why: 'the key store in use cannot look keys up by id (AuthZEN api_key subjects need the keys file)',
      };
    const record = keys.byId(id);
    if (!record) return { ok: false, detail: 'key_unknown', why: `no registered API key has the id "${id}"` };
    if (record.revoked) return { ok: false, detail: 'key_revoked', why: `API key "${id}" is revoked` };
    if (record.disabled) return { ok: false, detail: 'key_disabled', why: `API key "${id}" is disabled` };
    if (this.now() >= record.expiresAtMs)
      return {
        ok: false,
        detail: 'key_expired',
        why: `API key "${id}" expired at ${new Date(record.expiresAtMs).toISOString()}`,
      };
    return { ok: true, principal: record.principal };
  }

  /**
   * A token's subject: `claims` are the verified token's claims (sub and iss are set from the
   * subject), mapped with the configured issuer's claim settings. The issuer must be configured.
   */
  identity(sub: string, iss: string | undefined, claims: Record<string, unknown>): SubjectResult {
    const issuers = this.oauth.issuers;
    const issuer =
      iss === undefined ? (issuers.length === 1 ? issuers[0] : undefined) : issuers.find((i) => i.issuer === iss);
    if (!issuer)
      return {
        ok: false,
        detail: 'token_issuer_unknown',
        why:
          iss === undefined
            ? `name the token's issuer (subject.properties.iss): ${issuers.length} issuers are configured`
            : `the issuer "${iss}" is not configured`,
      };
    const p = tokenPrincipal(issuer, { ...claims, sub, iss: issuer.issuer }, sharesUserIds(issuer, issuers.length));
    return typeof p === 'string' ? { ok: false, detail: 'token_claim_missing', why: p } : { ok: true, principal: p };
  }

  /** A workload by its SPIFFE ID. */
  workload(id: string): SubjectResult {
    const spiffe = parseSpiffeId(id);
    if (!spiffe) return { ok: false, detail: 'peer_not_spiffe', why: `"${id}" is not a SPIFFE ID` };
    return {
      ok: true,
      principal: Object.freeze({
        authenticated: true,
        method: 'mtls',
        id: spiffe.id,
        roles: [],
        permissions: [],
        scopes: [],
        spiffeId: spiffe.id,
        trustDomain: spiffe.trustDomain,
      }) as Principal,
    };
  }
}
