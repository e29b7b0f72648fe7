// The authentication phase: the four endpoint modes (README "Authentication modes"). Everything a mode answers —
// descriptions, supported_methods, challenges (when publicBaseUrl is set) — is built once
// per endpoint at load; a Check call reads the credential, hashes an API key and does one
// Map lookup, or hands a bearer token to the TokenVerifier.
import type { AuthResult, Authenticator } from '../check/phases.js';
import type { Config } from '../config/schema.js';
import { hashApiKey, keyShape } from '../contracts/api-key.js';
import { badCredentialCode, type AuthCode, type AuthFailureDetail } from '../contracts/codes.js';
import { deny, type Deny, type HeaderToSet } from '../contracts/outcome.js';
import { ANONYMOUS } from '../contracts/principal.js';
import type { Request } from '../contracts/request.js';
import type { Endpoint, EndpointRegistry } from '../endpoints/registry.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { endpointChallenge } from './challenge.js';
import { extractCredential, type CredentialPlan, type CredentialSettings } from './credentials.js';
import type { KeyRegistry } from './key-registry.js';
import type { TokenVerifier } from './oauth/token-verifier.js';
import { headerLabel, methodLabels, SUPPORTED_BEARER, supportedMethods, type MethodLabels } from './supported-methods.js';

export { headerLabel, SUPPORTED_BEARER };

/** How one endpoint (or the unknown-endpoint case) authenticates, precomputed. */
interface ModePlan {
  endpoint: Endpoint | undefined;
  open: boolean;
  credentials: CredentialPlan;
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
}

export interface AuthenticatorOptions {
  config: Config;
  endpoints: EndpointRegistry;
  /** Where the registry in force is read from (swapped on reload). */
  keys: { readonly current: KeyRegistry };
  /** Undefined when no OAuth issuer is configured. */
  verifier: TokenVerifier | undefined;
  events: ServiceEvents;
  now?: () => number;
}

export class ModeAuthenticator implements Authenticator {
  private readonly plans = new Map<Endpoint, ModePlan>();
  private readonly unknown: ModePlan;
  private readonly settings: CredentialSettings;
  private readonly challengeSettings: { realm: string; publicBaseUrl: string | undefined };
  private readonly now: () => number;
  private readonly issuerAudiences: readonly string[];

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
      // On an unknown path a token counts as valid (→ 404) when it verifies for any OAuth endpoint's resource.
      audiences: [...oauthResources],
      missingDescription: 'Authentication required',
      supportedMethods: tokens ? [SUPPORTED_BEARER, keyMethod] : [keyMethod],
      invalidCode: badCredentialCode(undefined),
      invalidDescription: 'Authentication failed. Invalid credentials provided.',
      challenges: false,
      plainChallenge: undefined,
      invalidTokenChallenge: undefined,
    };
  }

  authenticate(request: Request, endpoint: Endpoint | undefined): AuthResult | Promise<AuthResult> {
    const plan = (endpoint && this.plans.get(endpoint)) ?? this.unknown;
    const { credential, headers, params } = extractCredential(request, plan.credentials, this.settings);
    if (plan.open) return { ok: true, principal: ANONYMOUS, credentialHeaders: headers, credentialQueryParams: params };

    switch (credential.kind) {
      case 'none':
        return { ok: false, detail: 'credential_missing', why: 'no credential in the request', deny: this.missing(plan, request) };
      case 'bad':
        return this.invalid(plan, request, credential.token, credential.detail, credential.why);
      case 'api_key': {
        const record = this.opts.keys.current.lookup(hashApiKey(credential.key));
        if (record === undefined) {
          return keyShape(credential.key) === 'bad_checksum'
            ? this.invalid(plan, request, false, 'key_bad_checksum', "the API key's checksum does not match: a typo or a truncated key")
            : this.invalid(plan, request, false, 'key_unknown', 'no registered API key has this hash');
        }
        if (record.disabled) return this.invalid(plan, request, false, 'key_disabled', `API key "${record.id}" is disabled`);
        if (this.now() >= record.expiresAtMs) {
          return this.invalid(plan, request, false, 'key_expired', `API key "${record.id}" expired at ${new Date(record.expiresAtMs).toISOString()}`);
        }
        this.opts.events.apiKeyUsed?.(record.id);
        return { ok: true, principal: record.principal, credentialHeaders: headers, credentialQueryParams: params };
      }
      case 'token':
        return this.verifyToken(plan, request, credential.token, headers, params);
    }
  }

  private async verifyToken(plan: ModePlan, request: Request, token: string, headers: string[], params: string[]): Promise<AuthResult> {
    const result = await this.opts.verifier!.verify(token, plan.audiences);
    if (!result.ok) return this.invalid(plan, request, true, result.detail, result.why);
    return { ok: true, principal: result.principal, credentialHeaders: headers, credentialQueryParams: params };
  }

  private missing(plan: ModePlan, request: Request): Deny {
    return deny('authentication_required', plan.missingDescription, {
      headers: plan.challenges ? [plan.plainChallenge ?? this.challengeFor(plan, request, false)] : [],
      extra: { supported_methods: plan.supportedMethods },
    });
  }

  private invalid(plan: ModePlan, request: Request, token: boolean, detail: AuthFailureDetail, why: string): AuthResult {
    const headers: HeaderToSet[] = [];
    if (plan.challenges) {
      headers.push((token ? plan.invalidTokenChallenge : plan.plainChallenge) ?? this.challengeFor(plan, request, token));
    }
    return { ok: false, detail, why, deny: deny(plan.invalidCode, plan.invalidDescription, { headers }) };
  }

  private challengeFor(plan: ModePlan, request: Request | undefined, invalidToken: boolean): HeaderToSet {
    const value = endpointChallenge(this.challengeSettings, plan.endpoint!, request, invalidToken ? { error: 'invalid_token' } : {});
    return { name: 'www-authenticate', value, append: false };
  }

  private planFor(e: Endpoint, labels: MethodLabels): ModePlan {
    const { apiKey, oauth } = e.auth;
    const queryKeys = apiKey && e.auth.queryParamKeys && this.settings.queryParams.length > 0;
    const plan: ModePlan = {
      endpoint: e,
      open: !apiKey && !oauth,
      credentials: { keys: apiKey, tokens: oauth, queryKeys, bearerIsKey: apiKey && !oauth },
      audiences: e.resource ? [...new Set([e.resource, ...this.issuerAudiences])] : this.issuerAudiences,
      missingDescription:
        apiKey && oauth ? 'Authentication required via OAuth bearer token or API key'
        : oauth ? 'Authentication required via OAuth bearer token'
        : 'Authentication required via API key',
      supportedMethods: Object.freeze(supportedMethods(e.auth, labels)),
      invalidCode: badCredentialCode(e.auth),
      invalidDescription:
        apiKey && oauth ? 'Authentication failed. Invalid credentials provided.'
        : oauth ? 'The provided OAuth token is invalid or has expired.'
        : 'The provided API key is invalid or expired',
      // API-key-only endpoints never send a Bearer challenge: it would start an OAuth loop in clients such as the MCP Inspector.
      challenges: oauth,
      plainChallenge: undefined,
      invalidTokenChallenge: undefined,
    };
    if (oauth && this.challengeSettings.publicBaseUrl !== undefined) {
      plan.plainChallenge = Object.freeze(this.challengeFor(plan, undefined, false));
      plan.invalidTokenChallenge = Object.freeze(this.challengeFor(plan, undefined, true));
    }
    return plan;
  }
}
