// Which credential a request carries, read once per Check without allocation-heavy work.
// API keys: the configured header (default x-api-key), `Authorization: Bearer mcp_…`, and
// the configured query parameters where the endpoint enables them. Any other Bearer value
// is an OAuth token — except on an API-key-only endpoint, where it can only be a key
// (development keys from MCP_API_KEYS need not start with "mcp_"). Last, the endpoint's
// session cookie (auth.jwtCookie) holds a JWT. Precedence: key, bearer token, cookie.
import { API_KEY_PREFIX } from '../contracts/api-key.js';
import type { AuthFailureDetail } from '../contracts/codes.js';
import type { Request } from '../contracts/request.js';
import { findCookie, type CookieName } from '../request/cookie-header.js';
import { looksLikeJwt } from './oauth/token-verifier.js';

/** What one endpoint reads; built once per endpoint at load. */
export interface CredentialPlan {
  keys: boolean;
  tokens: boolean;
  queryKeys: boolean;
  /** Treat every Bearer value as an API key (API-key-only endpoints). */
  bearerIsKey: boolean;
  /** The session cookie holding a JWT (auth.jwtCookie). */
  cookie?: CookieName;
}

export interface CredentialSettings {
  keyHeader: string;
  /** Human name of the key header for messages ("X-API-Key"). */
  keyHeaderLabel: string;
  queryParams: readonly string[];
  maxTokenBytes: number;
}

export type Credential =
  | { kind: 'none' }
  | { kind: 'api_key'; key: string; via: 'header' | 'bearer' | 'query' }
  | { kind: 'token'; token: string }
  /** A JWT from the session cookie: used only on same-site requests from an allowed origin. */
  | { kind: 'cookie'; token: string }
  /** Unusable or ambiguous: refused with the endpoint's bad-credential answer. `token` says whether the failing part was a bearer token. */
  | { kind: 'bad'; detail: AuthFailureDetail; why: string; token: boolean };

export interface Extracted {
  credential: Credential;
  /** Credential-carrying headers present (removed before the request goes upstream). */
  headers: string[];
  /** Credential-carrying query parameters present. */
  params: string[];
  /** The Cookie header without the session cookie, when that cookie was present ("": no other cookie). */
  cookiesLeft?: string;
}

const NONE: Credential = Object.freeze({ kind: 'none' });

export function extractCredential(request: Request, plan: CredentialPlan, s: CredentialSettings): Extracted {
  const headers: string[] = [];
  const params: string[] = [];
  const keyValues = request.headers[s.keyHeader];
  const authValues = request.headers.authorization;
  if (keyValues !== undefined) headers.push(s.keyHeader);

  const st: KeyState = { key: undefined, via: 'header', viaName: '', bad: undefined };
  let token: string | undefined;

  // The key header.
  if (keyValues !== undefined && plan.keys) {
    const v = keyValues.length === 1 ? keyValues[0]!.trim() : undefined;
    if (v === undefined || v.includes(','))
      st.bad ??= {
        kind: 'bad',
        detail: 'key_repeated',
        token: false,
        why: `the ${s.keyHeaderLabel} header is repeated`,
      };
    else if (v === '')
      st.bad ??= { kind: 'bad', detail: 'key_empty', token: false, why: `the ${s.keyHeaderLabel} header is empty` };
    else offerKey(st, v, 'header', s.keyHeaderLabel);
  }

  // Authorization: only the Bearer scheme is read; other schemes are not credentials of ours.
  // Its problems are kept apart: an API key from the key header or the query takes precedence
  // and alone decides, unless Authorization carries a different key.
  let authBad: Credential | undefined;
  if (authValues !== undefined) {
    headers.push('authorization');
    if (authValues.length > 1 && (plan.keys || plan.tokens))
      authBad = {
        kind: 'bad',
        detail: 'authorization_repeated',
        token: plan.tokens,
        why: 'the Authorization header is repeated',
      };
    for (const raw of authValues) {
      const bearerAt = bearerValueStart(raw);
      if (bearerAt < 0 || (!plan.keys && !plan.tokens)) continue;
      const value = raw.slice(bearerAt).trim();
      const asKey = plan.keys && (plan.bearerIsKey || value.startsWith(API_KEY_PREFIX));
      if (value === '') {
        authBad ??= {
          kind: 'bad',
          detail: 'bearer_empty',
          token: !asKey && plan.tokens,
          why: 'the Authorization header has the Bearer scheme but no value',
        };
      } else if (value.includes(',') || value.includes(' ')) {
        authBad ??= {
          kind: 'bad',
          detail: 'bearer_several_values',
          token: !asKey && plan.tokens,
          why: 'the Authorization header holds more than one value',
        };
        // Whatever else it holds, a second API key in it is two keys in one request.
        if (plan.keys)
          for (const part of value.split(/[\s,]+/))
            if (part.startsWith(API_KEY_PREFIX)) offerKey(st, part, 'bearer', 'Authorization');
      } else if (asKey) {
        offerKey(st, value, 'bearer', 'Authorization');
      } else if (plan.tokens) {
        if (value.length > s.maxTokenBytes)
          authBad ??= {
            kind: 'bad',
            detail: 'token_too_large',
            token: true,
            why: `the bearer token is ${value.length} bytes, above oauth.maxTokenBytes (${s.maxTokenBytes})`,
          };
        else if (!looksLikeJwt(value))
          authBad ??= {
            kind: 'bad',
            detail: 'token_not_jwt',
            token: true,
            why: 'the bearer token is not a JWT (expected three base64url segments separated by ".")',
          };
        else if (authValues.length === 1) token = value;
      }
    }
  }

  // Query parameters.
  for (let i = 0; i < s.queryParams.length; i++) {
    const name = s.queryParams[i]!;
    const values = request.query[name];
    if (values === undefined) continue;
    params.push(name);
    if (!plan.keys) continue;
    if (!plan.queryKeys) {
      st.bad ??= {
        kind: 'bad',
        detail: 'key_in_query_not_enabled',
        token: false,
        why: `API keys in the query string are not accepted on this endpoint (auth.queryParamKeys is off); send the ${s.keyHeaderLabel} header`,
      };
      continue;
    }
    for (const v of values) {
      if (v === '')
        st.bad ??= { kind: 'bad', detail: 'key_empty', token: false, why: `the ${name} query parameter is empty` };
      else offerKey(st, v, 'query', name);
    }
  }

  // The session cookie. A Cookie header that reads two ways refuses the request whatever else it
  // carries: the cookie could not be removed for sure before the request goes upstream.
  let cookie: Credential | undefined;
  let cookiesLeft: string | undefined;
  if (plan.cookie !== undefined) {
    const found = findCookie(request.headers.cookie, plan.cookie);
    if (found.kind === 'ambiguous')
      st.bad ??= { kind: 'bad', detail: 'cookie_ambiguous', token: false, why: found.why };
    else if (found.kind === 'malformed') {
      cookiesLeft = found.rest;
      cookie = { kind: 'bad', detail: 'cookie_malformed', token: false, why: found.why };
    } else if (found.kind === 'found') {
      cookiesLeft = found.rest;
      if (found.value.length > s.maxTokenBytes)
        cookie = {
          kind: 'bad',
          detail: 'token_too_large',
          token: false,
          why: `the ${plan.cookie.name} cookie is ${found.value.length} bytes, above oauth.maxTokenBytes (${s.maxTokenBytes})`,
        };
      else if (!looksLikeJwt(found.value))
        cookie = {
          kind: 'bad',
          detail: 'token_not_jwt',
          token: false,
          why: `the ${plan.cookie.name} cookie is not a JWT (expected three base64url segments separated by ".")`,
        };
      else cookie = { kind: 'cookie', token: found.value };
    }
  }

  let credential: Credential;
  if (st.bad !== undefined) credential = st.bad;
  else if (authBad !== undefined && !(st.key !== undefined && st.via !== 'bearer')) credential = authBad;
  else if (st.key !== undefined) credential = { kind: 'api_key', key: st.key, via: st.via };
  else if (token !== undefined) credential = { kind: 'token', token };
  else credential = cookie ?? NONE;
  return cookiesLeft === undefined ? { credential, headers, params } : { credential, headers, params, cookiesLeft };
}

/** Index where the Bearer credential starts, or -1 when the scheme is not Bearer (case-insensitive). */
function bearerValueStart(v: string): number {
  let i = 0;
  while (i < v.length && v.charCodeAt(i) === 32) i++;
  if (v.length - i < 6 || v.slice(i, i + 6).toLowerCase() !== 'bearer') return -1;
  const after = i + 6;
  if (after === v.length) return after;
  return v.charCodeAt(after) === 32 || v.charCodeAt(after) === 9 ? after : -1;
}

type KeyVia = 'header' | 'bearer' | 'query';

interface KeyState {
  key: string | undefined;
  via: KeyVia;
  viaName: string;
  bad: Credential | undefined;
}

function offerKey(st: KeyState, value: string, via: KeyVia, name: string): void {
  if (st.key === undefined) {
    st.key = value;
    st.via = via;
    st.viaName = name;
  } else if (st.key !== value) {
    st.bad ??= {
      kind: 'bad',
      detail: 'keys_conflict',
      token: false,
      why: `two different API keys in one request (${describe(st.via, st.viaName)} and ${describe(via, name)}${st.via !== via && (st.via === 'query' || via === 'query') ? ': header and query disagree' : ''})`,
    };
  }
}

function describe(via: KeyVia, name: string): string {
  return via === 'query' ? `the ${name} query parameter` : `the ${name} header`;
}
