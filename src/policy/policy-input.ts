// Builds the policy input (docs/policies.md "Input") as a JSON string, from parts
// precomputed at load: each endpoint's JSON is serialized once. Credentials never reach
// the policy: credential headers and query parameters are redacted everywhere they occur —
// unless `policy.rawCredentials` hands the credential headers to a policy that verifies
// them itself (opa-envoy-plugin policies); the input every output shows stays redacted.
import type { CheckContext } from '../decision/context.js';
import type { Principal } from '../contracts/principal.js';
import type { HeaderMap, QueryMap } from '../contracts/request.js';
import { trimSlash } from '../contracts/trim-slash.js';
import { resourceMetadataUrl } from '../endpoints/metadata-url.js';
import type { Endpoint } from '../endpoints/registry.js';
import { applicableGrants } from './applicable-grants.js';
import { mcpJsonWithViews, viewPlan, type ViewPlan } from './argument-views.js';
import { credentialStrings, redactedAttributes, redactPathQuery, REDACTED } from './redact-attributes.js';

export { REDACTED };

export interface InputOptions {
  /**
   * Add opa-envoy-plugin's fields: attributes, parsed_path, parsed_query, parsed_body, truncated_body, version.
   * Undefined: as the loaded bundle declares (LoadedPolicy.envoyInput).
   */
  envoyInput: boolean | undefined;
  publicBaseUrl: string | undefined;
  /** The API key header (apiKeys.header). */
  keyHeader: string;
  /** The API key query parameters (apiKeys.queryParams). */
  keyQueryParams: readonly string[];
  /**
   * policy.grantsInput: which of the caller's grants principal.permissions and principal.scopes
   * hold. Undefined: as the loaded bundle declares (LoadedPolicy.grantsInput).
   */
  grantsInput?: GrantsInput | undefined;
}

/**
 * What principal.permissions and principal.scopes hold: all the caller's grants, or those that
 * can apply to the request (applicable-grants.ts; docs/policies.md "Grants in the input").
 */
export type GrantsInput = 'all' | 'applicable';

const NO_SECRET = (): boolean => false;

const ALWAYS_REDACTED_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'x-api-key'];
const ENVOY_VERSION = '{"encoding":"protojson","ext_authz":"v3"}';

interface EndpointJson {
  /** Complete JSON when resource_metadata is known at load (publicBaseUrl set). */
  full?: string;
  /** JSON without its closing brace; resource_metadata is added per request from scheme and host. */
  open: string;
  metadataPath: string;
}

export class InputBuilder {
  private readonly endpoints = new Map<Endpoint, EndpointJson>();
  private readonly redactHeaders: ReadonlySet<string>;
  private readonly redactQuery: ReadonlySet<string>;
  private readonly anonymousJson: string;
  /** The credentials of the Check being built (build is synchronous): read by the two predicates below. */
  private credentialHeaders: readonly string[] = [];
  private credentialQueryParams: readonly string[] = [];
  // Made once, not per Check: whether a header or query parameter is a secret to redact.
  private readonly headerSecret = (name: string): boolean =>
    this.redactHeaders.has(name) || this.credentialHeaders.includes(name);
  private readonly querySecret = (name: string): boolean =>
    this.redactQuery.has(name) || this.credentialQueryParams.includes(name);
  /** Per endpoint, the arguments whose URL and path views the policy reads (argument-views.ts). */
  private readonly viewPlans = new Map<Endpoint, ViewPlan>();
  /** Per endpoint, the grant strings its argument rules exempt (kept in applicable grants). */
  private readonly exemptGrants = new Map<Endpoint, readonly string[]>();

  constructor(
    endpoints: readonly Endpoint[],
    private readonly opts: InputOptions,
  ) {
    const base = opts.publicBaseUrl === undefined ? undefined : trimSlash(opts.publicBaseUrl);
    for (const e of endpoints) {
      const { metadataPath, ...config } = e;
      const open = JSON.stringify(policyView(config)).slice(0, -1);
      const entry: EndpointJson = { open, metadataPath };
      if (base !== undefined)
        entry.full = `${open},"resource_metadata":${JSON.stringify(resourceMetadataUrl(base, e))}}`;
      this.endpoints.set(e, entry);
      const plan = viewPlan(e.data);
      if (plan !== undefined) this.viewPlans.set(e, plan);
      this.exemptGrants.set(e, exemptGrantsOf(e.data));
    }
    this.redactHeaders = new Set([...ALWAYS_REDACTED_HEADERS, opts.keyHeader.toLowerCase()]);
    this.redactQuery = new Set(opts.keyQueryParams);
    this.anonymousJson = JSON.stringify(
      principalView({
        authenticated: false,
        method: 'anonymous',
        id: 'anonymous',
        roles: [],
        permissions: [],
        scopes: [],
      }),
    );
  }

  /**
   * The input document as UTF-8 JSON text. `rawHeaders`: credential headers keep their values
   * in `request.headers` and `attributes` (policy.rawCredentials); query parameters stay redacted.
   * `bundleGrants`: what the loaded bundle declares it reads of the grants (policy.grantsInput overrides).
   */
  build(
    ctx: CheckContext,
    bundleWantsEnvoyInput = true,
    rawHeaders = false,
    bundleGrants: GrantsInput = 'all',
  ): string {
    const { request } = ctx;
    this.credentialHeaders = ctx.credentialHeaders;
    this.credentialQueryParams = ctx.credentialQueryParams;
    const { querySecret } = this;
    const headerSecret = rawHeaders ? NO_SECRET : this.headerSecret;
    const headers = redactHeaderMap(request.headers, headerSecret, querySecret);
    const query = redactQueryMap(request.query, querySecret);

    let s = '{"request":';
    s += JSON.stringify({
      id: request.id,
      method: request.method,
      scheme: request.scheme,
      host: request.host,
      path: request.path,
      query,
      headers,
    });
    s += ',"endpoint":' + this.endpointJson(ctx);
    s +=
      ',"principal":' +
      (ctx.principal.method === 'anonymous' && !ctx.principal.authenticated
        ? this.anonymousJson
        : JSON.stringify(
            (this.opts.grantsInput ?? bundleGrants) === 'applicable'
              ? principalView(
                  ctx.principal,
                  this.applicable(ctx, ctx.principal.permissions),
                  this.applicable(ctx, ctx.principal.scopes),
                )
              : principalView(ctx.principal),
          ));
    const { source: _source, ...mcp } = ctx.mcp;
    const plan = ctx.endpoint && this.viewPlans.get(ctx.endpoint);
    s += ',"mcp":' + (plan ? mcpJsonWithViews(mcp, plan) : JSON.stringify(mcp));
    if (this.opts.envoyInput ?? bundleWantsEnvoyInput) {
      s += ',"attributes":' + JSON.stringify(redactedAttributes(request.attributes, headerSecret, querySecret));
      s += ',"parsed_path":' + JSON.stringify(parsedPath(request.path));
      s += ',"parsed_query":' + JSON.stringify(query);
      if (ctx.parsedBody !== undefined) s += ',"parsed_body":' + JSON.stringify(ctx.parsedBody);
      s += ',"truncated_body":' + String(truncated(request.headers, request.bodyBytes));
      s += ',"version":' + ENVOY_VERSION;
    }
    return s + '}';
  }

  /**
   * The request's credential header values (and their parts, credentialStrings), which a
   * redacted input replaces: empty when the request carries none.
   */
  credentialValues(ctx: CheckContext): string[] {
    this.credentialHeaders = ctx.credentialHeaders;
    const values: string[] = [];
    const { headers } = ctx.request;
    for (const name in headers) if (this.headerSecret(name)) values.push(...headers[name]!);
    const headerMap = (
      ctx.request.attributes.request as
        | { http?: { headerMap?: { headers?: { key?: string; value?: string; rawValue?: string }[] } } }
        | undefined
    )?.http?.headerMap?.headers;
    for (const e of headerMap ?? []) {
      if (!e.key || !this.headerSecret(e.key.toLowerCase())) continue;
      if (e.value !== undefined) values.push(e.value);
      if (e.rawValue !== undefined) values.push(e.rawValue, Buffer.from(e.rawValue, 'base64').toString('utf8'));
    }
    return values.length === 0 ? values : credentialStrings(values);
  }

  private applicable(ctx: CheckContext, grants: readonly string[]): readonly string[] {
    if (grants.length === 0) return grants;
    const e = ctx.endpoint;
    const exempt = e === undefined ? NO_GRANTS : (this.exemptGrants.get(e) ?? exemptGrantsOf(e.data));
    return applicableGrants(grants, ctx.mcp.calls, exempt);
  }

  private endpointJson(ctx: CheckContext): string {
    const e = ctx.endpoint;
    if (!e) return 'null';
    const pre = this.endpoints.get(e);
    if (!pre) return JSON.stringify(e);
    if (pre.full !== undefined) return pre.full;
    const url = resourceMetadataUrl(`${ctx.request.scheme}://${ctx.request.host}`, pre);
    return `${pre.open},"resource_metadata":${JSON.stringify(url)}}`;
  }
}

/**
 * An endpoint as the policy sees it: its config, with the upstream credential reduced to its
 * mode (where the token endpoint is and which files hold secrets is none of the policy's business).
 */
export function policyView<E extends { upstream?: { mode: string } | undefined }>(
  e: E,
): E | (Omit<E, 'upstream'> & { upstream: { mode: string } }) {
  return e.upstream === undefined ? e : { ...e, upstream: { mode: e.upstream.mode } };
}

const NO_GRANTS: readonly string[] = Object.freeze([]);

/** The grant strings the endpoint's argument rules (data.arguments[].exemptGrants) name. */
function exemptGrantsOf(data: unknown): readonly string[] {
  const rules = (data as { arguments?: unknown } | undefined)?.arguments;
  if (!Array.isArray(rules)) return NO_GRANTS;
  const out = new Set<string>();
  for (const r of rules) {
    const exempt = (r as { exemptGrants?: unknown } | null)?.exemptGrants;
    if (Array.isArray(exempt)) for (const g of exempt) if (typeof g === 'string') out.add(g);
  }
  return out.size === 0 ? NO_GRANTS : [...out];
}

function principalView(
  p: Principal,
  permissions: readonly string[] = p.permissions,
  scopes: readonly string[] = p.scopes,
): Record<string, unknown> {
  return {
    authenticated: p.authenticated,
    method: p.method,
    id: p.id,
    userId: p.userId,
    role: p.role,
    roles: p.roles,
    permissions,
    scopes,
    keyType: p.keyType,
    keyId: p.keyId,
    issuer: p.issuer,
    subject: p.subject,
    claims: p.claims,
    tokenSource: p.tokenSource,
    spiffeId: p.spiffeId,
    trustDomain: p.trustDomain,
  };
}

/** name → the values joined with "," (as Envoy's `headers` map presents them). */
function redactHeaderMap(
  h: HeaderMap,
  secret: (n: string) => boolean,
  querySecret: (n: string) => boolean,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name in h) {
    const values = h[name]!;
    out[name] = secret(name) ? REDACTED : values.length === 1 ? values[0]! : values.join(',');
  }
  // The :path pseudo-header repeats the query, credentials included.
  if (out[':path'] !== undefined) out[':path'] = redactPathQuery(out[':path'], querySecret);
  return out;
}

function redactQueryMap(q: QueryMap, secret: (n: string) => boolean): QueryMap {
  const out: QueryMap = {};
  for (const name in q) out[name] = secret(name) ? q[name]!.map(() => REDACTED) : q[name]!;
  return out;
}

/** opa-envoy-plugin's parsed_path: the path's segments, without the leading "/". */
function parsedPath(path: string): string[] {
  return path.replace(/^\/+/, '').split('/');
}

function truncated(h: HeaderMap, bodyBytes: number): boolean {
  if (h['x-envoy-auth-partial-body']?.[0] === 'true') return true;
  const cl = h['content-length']?.[0];
  return cl !== undefined && bodyBytes > 0 && Number(cl) > bodyBytes;
}
