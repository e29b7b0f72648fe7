// The authentication phase: the four endpoint modes (README "Authentication modes"), plus the
// session cookie and the mTLS peer an endpoint may also accept. Everything a mode answers —
// descriptions, supported_methods, challenges (when publicBaseUrl is set) — is built once
// per endpoint at load; a Check call reads the credential, hashes an API key and does one
// Map lookup, or hands a bearer or cookie token to the TokenVerifier.
import type { AuthResult, Authenticator } from '../decision/phases.js';
import type { Config } from '../config/schema.js';
import { hashApiKey, keyShape } from '../contracts/api-key.js';
import { badCredentialCode, type AuthCode, type AuthFailureDetail } from '../contracts/codes.js';
import { deny, fixedDeny, type Deny, type HeaderToSet } from '../contracts/outcome.js';
import { ANONYMOUS, type Principal } from '../contracts/principal.js';
import type { Request } from '../contracts/request.js';
import type { OriginCheck } from '../endpoints/origin-check.js';
import type { Endpoint, EndpointRegistry } from '../endpoints/registry.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { cookieName } from '../request/cookie-header.js';
import { endpointChallenge } from './challenge.js';
import { extractCredential, type CredentialPlan, type CredentialSettings, type Extracted } from './credentials.js';
import type { KeyAnswer, KeyLookup } from './key-registry.js';
import type { TokenVerifier } from './oauth/token-verifier.js';
import {
  headerLabel,
  methodLabels,
  SUPPORTED_BEARER,
  supportedMethods,
  type MethodLabels,
} from './supported-methods.js';
import { WorkloadIdentities } from './workload-identity.js';

export { headerLabel, SUPPORTED_BEARER };

const STORE_UNAVAILABLE = fixedDeny('key_store_unavailable', 'The API key store is unavailable; try again later.');

const COOKIE_CROSS_SITE =
  'The session cookie is used only on same-site requests from a page on an origin this endpoint allows (allowedOrigins); send the request from such a page, or send a bearer token';

/** How one endpoint (or the unknown-endpoint case) authenticates, precomputed. */
interface ModePlan {
  endpoint: Endpoint | undefined;
  open: boolean;
  credentials: CredentialPlan;
  /** Accept the mTLS peer's workload identity when the request carries no credential. */
  mtls: boolean;
  /** Audiences a token must carry: the endpoint's resource (the verifier adds issuers' configured audiences). */
  audiences: readonly string[];
  missingDescription: string;
  supportedMethods: readonly string[];
  invalidCode: AuthCode;
  invalidDescription: string;
  /** Bearer challenges on every 401 (OAuth-enabled endpoints only); precomputed when publicBaseUrl is set. */
  challenges: boolean;
  plainChallenge: HeaderToSet | undefined;
  invalidTokenChallenge: HeaderToSet | undefined;
  /** The 401s, built once when nothing in them depends on the request (no challenge, or publicBaseUrl set). */
  missingDeny: Deny | undefined;
  invalidDeny: Deny | undefined;
  invalidTokenDeny: Deny | undefined;
}

export interface AuthenticatorOptions {
  config: Config;
  endpoints: EndpointRegistry;
  /** Where the registry in force is read from (swapped on reload). */
  keys: { readonly current: KeyLookup };
  /** Undefined when no OAuth issuer is configured. */
  verifier: TokenVerifier | undefined;
  events: ServiceEvents;
  /** The endpoints' allowed origins: a session cookie is used only from them. */
  origins?: OriginCheck;
  now?: () => number;
}

export class ModeAuthenticator implements Authenticator {
  private readonly plans = new Map<Endpoint, ModePlan>();
  private readonly unknown: ModePlan;
  private readonly settings: CredentialSettings;
  private readonly challengeSettings: { realm: string; publicBaseUrl: string | undefined };
  private readonly now: () => number;
  private readonly issuerAudiences: readonly string[];
  private readonly workloads = new WorkloadIdentities();

  constructor(private readonly opts: AuthenticatorOptions) {
    const { config } = opts;
    const keyHeaderLabel = headerLabel(config.apiKeys.header);
    this.settings = {
      keyHeader: config.apiKeys.header,
      keyHeaderLabel,
      queryParams: config.apiKeys.queryParams,
      maxTokenBytes: config.oauth.maxTokenBytes,
    };
    this.challengeSettings = { realm: config.realm, publicBaseUrl: config.publicBaseUrl };
    this.now = opts.now ?? Date.now;
    const labels = methodLabels(config);
    const keyMethod = labels.key;
    // Issuers' configured audiences are accepted on every OAuth endpoint, besides the endpoint's own resource.
    this.issuerAudiences = [...new Set(config.oauth.issuers.flatMap((i) => i.audiences ?? []))];
    const oauthResources = new Set<string>(this.issuerAudiences);
    for (const e of opts.endpoints.all) {
      this.plans.set(e, this.planFor(e, labels));
      if (e.auth.oauth && e.resource) oauthResources.add(e.resource);
    }
    const tokens = opts.verifier !== undefined && config.oauth.issuers.length > 0;
    this.unknown = {
      endpoint: undefined,
      open: false,
      credentials: { keys: true, tokens, queryKeys: false, bearerIsKey: !tokens },
      mtls: false,
      // On an unknown path a token counts as valid (→ 404) when it verifies for any OAuth endpoint's resource.
      audiences: [...oauthResources],
      missingDescription: 'Authentication required',
      supportedMethods: tokens ? [SUPPORTED_BEARER, keyMethod] : [keyMethod],
      invalidCode: badCredentialCode(undefined),
      invalidDescription: 'Authentication failed. Invalid credentials provided.',
      challenges: false,
      plainChallenge: undefined,
      invalidTokenChallenge: undefined,
      missingDeny: undefined,
      invalidDeny: undefined,
      invalidTokenDeny: undefined,
    };
    fixDenies(this.unknown);
  }

  authenticate(request: Request, endpoint: Endpoint | undefined): AuthResult | Promise<AuthResult> {
    const plan = (endpoint && this.plans.get(endpoint)) ?? this.unknown;
    const found = extractCredential(request, plan.credentials, this.settings);
    const { credential } = found;
    if (plan.open) return authenticated(ANONYMOUS, found);

    switch (credential.kind) {
      case 'none': {
        // The mTLS peer comes last: a key or token in the request speaks for someone more specific.
        const workload = plan.mtls ? this.workloads.identify(request) : undefined;
        if (workload?.kind === 'ok') return authenticated(workload.principal, found);
        if (workload?.kind === 'bad') return this.invalid(plan, request, false, workload.detail, workload.why);
        return {
          ok: false,
          detail: 'credential_missing',
          why: 'no credential in the request',
          deny: this.missing(plan, request),
        };
      }
      case 'bad':
        return this.invalid(plan, request, credential.token, credential.detail, credential.why);
      case 'api_key': {
        const answer = this.opts.keys.current.lookup(hashApiKey(credential.key));
        // A database store may answer later; the file registry answers at once.
        if (answer instanceof Promise)
          return answer.then((a) => this.keyResult(plan, request, credential.key, a, found));
        return this.keyResult(plan, request, credential.key, answer, found);
      }
      case 'token':
        return this.verifyToken(plan, request, credential.token, found, false);
      case 'cookie': {
        // Never a failure that counts towards the lockout: a page on another site must not be
        // able to lock a user out by making their browser send their cookie.
        const refused = this.cookieRefused(plan, request);
        if (refused !== undefined)
          return {
            ok: false,
            detail: 'cookie_cross_site',
            why: refused,
            deny: this.missing(plan, request, COOKIE_CROSS_SITE),
          };
        return this.verifyToken(plan, request, credential.token, found, true);
      }
    }
  }

  private keyResult(plan: ModePlan, request: Request, key: string, record: KeyAnswer, found: Extracted): AuthResult {
    if (record === undefined) {
      return keyShape(key) === 'bad_checksum'
        ? this.invalid(
            plan,
            request,
            false,
            'key_bad_checksum',
            "the API key's checksum does not match: a typo or a truncated key",
          )
        : this.invalid(plan, request, false, 'key_unknown', 'no registered API key has this hash');
    }
    if (record === 'unavailable') {
      return {
        ok: false,
        detail: 'key_store_unavailable',
        why: 'the API key store cannot be reached and holds no usable answer for this key',
        deny: STORE_UNAVAILABLE,
      };
    }
    if (record.disabled) {
      return record.revoked
        ? this.invalid(plan, request, false, 'key_revoked', `API key "${record.id}" was revoked`)
        : this.invalid(plan, request, false, 'key_disabled', `API key "${record.id}" is disabled`);
    }
    if (this.now() >= record.expiresAtMs) {
      return this.invalid(
        plan,
        request,
        false,
        'key_expired',
        `API key "${record.id}" expired at ${new Date(record.expiresAtMs).toISOString()}`,
      );
    }
    this.opts.events.apiKeyUsed?.(record.id);
    return authenticated(record.principal, found);
  }

  private async verifyToken(
    plan: ModePlan,
    request: Request,
    token: string,
    found: Extracted,
    fromCookie: boolean,
  ): Promise<AuthResult> {
    const result = await this.opts.verifier!.verify(token, plan.audiences);
    if (!result.ok) return this.invalid(plan, request, !fromCookie, result.detail, result.why);
    return authenticated(fromCookie ? cookiePrincipal(result.principal) : result.principal, found, token);
  }

  /**
   * Why a session cookie may not authenticate this request, or undefined when it may: it must
   * come from a browser page on an allowed origin (a same-origin GET carries no Origin), and
   * Sec-Fetch-Site, when sent, must say same-origin or same-site.
   */
  private cookieRefused(plan: ModePlan, request: Request): string | undefined {
    const site = request.headers['sec-fetch-site'];
    if (site !== undefined && (site.length !== 1 || (site[0] !== 'same-origin' && site[0] !== 'same-site'))) {
      return `Sec-Fetch-Site is ${JSON.stringify(site.join(','))}: a request that is not same-site never authenticates by cookie`;
    }
    const origin = this.opts.origins?.verdict(request.headers, plan.endpoint!) ?? 'absent';
    if (origin === 'allowed') return undefined;
    if (origin === 'absent' && (request.method === 'GET' || request.method === 'HEAD') && site?.[0] === 'same-origin')
      return undefined;
    return origin === 'absent'
      ? 'no Origin: only a same-origin GET (Sec-Fetch-Site: same-origin) may authenticate by cookie without one'
      : "the Origin is not one of the endpoint's allowedOrigins";
  }

  private missing(plan: ModePlan, request: Request, description = plan.missingDescription): Deny {
    if (plan.missingDeny && description === plan.missingDescription) return plan.missingDeny;
    return deny('authentication_required', description, {
      headers: plan.challenges ? [plan.plainChallenge ?? this.challengeFor(plan, request, false)] : [],
      extra: { supported_methods: plan.supportedMethods },
    });
  }

  private invalid(
    plan: ModePlan,
    request: Request,
    token: boolean,
    detail: AuthFailureDetail,
    why: string,
  ): AuthResult {
    const fixed = token ? plan.invalidTokenDeny : plan.invalidDeny;
    if (fixed) return { ok: false, detail, why, deny: fixed };
    const headers: HeaderToSet[] = [];
    if (plan.challenges) {
      headers.push(
        (token ? plan.invalidTokenChallenge : plan.plainChallenge) ?? this.challengeFor(plan, request, token),
      );
    }
    return { ok: false, detail, why, deny: deny(plan.invalidCode, plan.invalidDescription, { headers }) };
  }

  private challengeFor(plan: ModePlan, request: Request | undefined, invalidToken: boolean): HeaderToSet {
    const value = endpointChallenge(
      this.challengeSettings,
      plan.endpoint!,
      request,
      invalidToken ? { error: 'invalid_token' } : {},
    );
    return { name: 'www-authenticate', value, append: false };
  }

  private planFor(e: Endpoint, labels: MethodLabels): ModePlan {
    const { apiKey, oauth, mtls, jwtCookie } = e.auth;
    const cookie = jwtCookie === undefined ? undefined : cookieName(jwtCookie);
    const queryKeys = apiKey && e.auth.queryParamKeys && this.settings.queryParams.length > 0;
    const invalidCode = badCredentialCode(e.auth);
    const plan: ModePlan = {
      endpoint: e,
      open: !apiKey && !oauth && !mtls && cookie === undefined,
      credentials: {
        keys: apiKey,
        tokens: oauth,
        queryKeys,
        bearerIsKey: apiKey && !oauth,
        ...(cookie ? { cookie } : {}),
      },
      mtls,
      audiences: e.resource ? [...new Set([e.resource, ...this.issuerAudiences])] : this.issuerAudiences,
      missingDescription: `Authentication required via ${alternatives([oauth && 'OAuth bearer token', apiKey && 'API key', cookie !== undefined && 'session cookie', mtls && 'mTLS workload identity'])}`,
      supportedMethods: Object.freeze(supportedMethods(e.auth, labels)),
      invalidCode,
      invalidDescription:
        invalidCode === 'invalid_token'
          ? 'The provided OAuth token is invalid or has expired.'
          : invalidCode === 'invalid_api_key'
            ? 'The provided API key is invalid or expired'
            : 'Authentication failed. Invalid credentials provided.',
      // API-key-only endpoints never send a Bearer challenge: it would start an OAuth loop in clients such as the MCP Inspector.
      challenges: oauth,
      plainChallenge: undefined,
      invalidTokenChallenge: undefined,
      missingDeny: undefined,
      invalidDeny: undefined,
      invalidTokenDeny: undefined,
    };
    if (oauth && this.challengeSettings.publicBaseUrl !== undefined) {
      plan.plainChallenge = Object.freeze(this.challengeFor(plan, undefined, false));
      plan.invalidTokenChallenge = Object.freeze(this.challengeFor(plan, undefined, true));
    }
    fixDenies(plan);
    return plan;
  }
}

/** The plan's 401s, when their challenge (if any) does not depend on the request. */
function fixDenies(plan: ModePlan): void {
  if (plan.open || (plan.challenges && plan.plainChallenge === undefined)) return;
  const plain = plan.plainChallenge ? [plan.plainChallenge] : [];
  plan.missingDeny = fixedDeny('authentication_required', plan.missingDescription, {
    headers: plain,
    extra: { supported_methods: plan.supportedMethods },
  });
  plan.invalidDeny = fixedDeny(plan.invalidCode, plan.invalidDescription, { headers: plain });
  plan.invalidTokenDeny = fixedDeny(plan.invalidCode, plan.invalidDescription, {
    headers: plan.invalidTokenChallenge ? [plan.invalidTokenChallenge] : [],
  });
}

/** An authenticated result; the session cookie, when present, is removed and the other cookies kept. */
function authenticated(principal: Principal, found: Extracted, subjectToken?: string): AuthResult {
  const ok = {
    ok: true as const,
    principal,
    credentialHeaders: found.headers,
    credentialQueryParams: found.params,
    subjectToken,
  };
  if (found.cookiesLeft === undefined) return ok;
  if (found.cookiesLeft === '') return { ...ok, credentialHeaders: [...found.headers, 'cookie'] };
  return { ...ok, credentialHeaderRewrites: [{ name: 'cookie', value: found.cookiesLeft, append: false }] };
}

/** Token principals from the session cookie say so (principal.tokenSource), for policies that treat browser sessions apart. */
const cookiePrincipals = new WeakMap<Principal, Principal>();
function cookiePrincipal(p: Principal): Principal {
  let c = cookiePrincipals.get(p);
  if (c === undefined) {
    c = Object.freeze({ ...p, tokenSource: 'cookie' as const });
    cookiePrincipals.set(p, c);
  }
  return c;
}

/** ["A", false, "B", "C"] → "A, B or C". */
function alternatives(names: (string | false)[]): string {
  const n = names.filter((x): x is string => x !== false);
  return n.length <= 1 ? n.join('') : `${n.slice(0, -1).join(', ')} or ${n[n.length - 1]}`;
}
