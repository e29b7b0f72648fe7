// Who is calling: what authentication produced and what the policy sees as input.principal.

export type AuthMethod = 'api_key' | 'oauth' | 'mtls' | 'anonymous';

export interface Principal {
  authenticated: boolean;
  method: AuthMethod;
  /** Stable, non-secret id: the key id, "<iss>#<sub>" for tokens, the SPIFFE ID for workloads, "anonymous". */
  id: string;
  userId?: string;
  role?: string;
  roles: string[];
  /** API key grants ("tools:search", "*"). */
  permissions: string[];
  /** Token scopes. */
  scopes: string[];
  keyType?: 'public' | 'private';
  keyId?: string;
  issuer?: string;
  subject?: string;
  claims?: Record<string, unknown>;
  /** Tokens read from the endpoint's session cookie (auth.jwtCookie) rather than the Authorization header. */
  tokenSource?: 'cookie';
  /** mTLS workloads: the peer's SPIFFE ID and its trust domain. */
  spiffeId?: string;
  trustDomain?: string;
}

export const ANONYMOUS: Principal = Object.freeze({
  authenticated: false,
  method: 'anonymous',
  id: 'anonymous',
  roles: [],
  permissions: [],
  scopes: [],
}) as Principal;
