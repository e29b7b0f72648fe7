// One Check call, top to bottom:
//   decode → direct answers → endpoint → origin → limits → authenticate → MCP body → authorize → dry-run → quotas → upstream credentials → respond
// Each phase is a function or object from its own folder; this file only orders them. The
// transport decodes its own message (src/envoy/to-request.ts for ext_authz Check) through
// the decoder it passes, so a refused request is still a deny every observer sees. With
// tracing on, a sampled Check gets a span per phase; otherwise `span` is undefined and each
// `span?.phase(…)` is one test of it.
import { randomUUID } from 'node:crypto';
import type { CheckContext, CheckTrace } from '../decision/context.js';
import type { ApprovalGrant, UpstreamGrant } from '../decision/phases.js';
import type { ApprovalRequirement } from '../contracts/approval.js';
import type { Config } from '../config/schema.js';
import { deny, internalErrorDeny, type Deny, type Outcome } from '../contracts/outcome.js';
import { ANONYMOUS } from '../contracts/principal.js';
import { RequestRejected } from '../contracts/request-rejected.js';
import type { McpView, Request } from '../contracts/request.js';
import { checkBodyIntegrity, requireMessage } from '../request/body-integrity.js';
import { parseMcp } from '../request/json-rpc.js';
import { incomingTraceContext, type CallHeader } from '../request/trace-context.js';
import { assembleAllow, NOTHING_TO_ADD } from './allow.js';
import { inForce } from './live-runtime.js';
import type { Runtime } from './runtime.js';

export type { CallHeader } from '../request/trace-context.js';

/** Turns a transport's message into the request model; throws RequestRejected for what it cannot read. */
export type Decoder<I> = (input: I, limits: Config['limits']) => Request;

const NO_MCP: McpView = Object.freeze({
  present: false,
  batch: false,
  protocolVersion: undefined,
  calls: [],
  source: 'none',
}) as McpView;
// Replaced before anyone reads it: every path below sets the outcome.
const UNDECIDED: Outcome = Object.freeze(deny('internal_error', 'undecided'));

/**
 * Runs the whole pipeline on one message. Never throws: an internal error is a 503 deny.
 * `call` and `callHeader` let the transport's own call (gRPC metadata, HTTP/2 headers) carry
 * the W3C trace context; without them only the HTTP request's traceparent is read.
 */
export async function runCheck<I, C = never>(
  runtime: Runtime,
  decode: Decoder<I>,
  input: I,
  call?: C,
  callHeader?: CallHeader<C>,
): Promise<CheckTrace> {
  const started = process.hrtime.bigint();
  // Read once: the whole call decides on one endpoint set, whatever changes meanwhile.
  const rt = inForce(runtime);
  const trace: CheckTrace = {
    decisionId: randomUUID(),
    outcome: UNDECIDED,
    ctx: undefined,
    policy: undefined,
    incoming: undefined,
    span: undefined,
    durationNs: 0n,
    shadow: undefined,
  };
  try {
    const request = decode(input, rt.config.limits);
    trace.ctx = newContext(request, rt);
    trace.incoming = incomingTraceContext(request.headers, call, callHeader);
    if (rt.tracing) trace.span = rt.tracing.start(trace, started);
    trace.outcome = await decide(rt, trace.ctx, trace);
    if (request.answerLimits) trace.outcome = fitTransport(trace.outcome, request);
  } catch (err) {
    trace.outcome =
      err instanceof RequestRejected
        ? deny(err.code, err.description, { jsonRpc: err.jsonRpc })
        : internalError(rt, err, trace.ctx?.request);
  }
  trace.span?.phase('respond');
  trace.durationNs = process.hrtime.bigint() - started;
  rt.observer.decided(trace);
  trace.span?.end();
  return trace;
}

async function decide(rt: Runtime, ctx: CheckContext, trace: CheckTrace): Promise<Outcome> {
  const { request } = ctx;
  const { span } = trace;

  span?.phase('direct_answer');
  const direct = rt.directResponder.answer(request);
  if (direct) return direct;

  span?.phase('endpoint');
  ctx.endpoint = rt.endpoints.match(request.path, request.host);
  // A browser page on another origin (or a DNS-rebound one) is refused before anything else.
  const foreign = ctx.endpoint && rt.origins.check(request.headers, ctx.endpoint);
  if (foreign) return foreign;

  span?.phase('limits');
  const locked = await rt.limiter.beforeAuth(ctx);
  if (locked) return locked;

  span?.phase('authenticate');
  const auth = await rt.authenticator.authenticate(request, ctx.endpoint);
  if (!auth.ok) {
    ctx.authFailure = { code: auth.deny.code, detail: auth.detail, why: auth.why };
    // A failure past the limit (concurrent attempts racing the lockout) is answered as the lockout.
    // A key store that cannot answer is the service's failure, not the caller's: never counted.
    const counts = auth.deny.code !== 'authentication_required' && auth.deny.code !== 'key_store_unavailable';
    const lockedNow = counts ? await rt.limiter.authFailed(ctx) : undefined;
    return lockedNow ?? auth.deny;
  }
  ctx.principal = auth.principal;
  ctx.credentialHeaders = auth.credentialHeaders;
  ctx.credentialQueryParams = auth.credentialQueryParams;
  if (auth.credentialHeaderRewrites) ctx.credentialHeaderRewrites = auth.credentialHeaderRewrites;
  if (auth.subjectToken !== undefined) ctx.subjectToken = auth.subjectToken;

  if (!ctx.endpoint) {
    return deny('not_found', `No MCP endpoint is configured for ${request.path}.`);
  }

  span?.phase('limits');
  const limited = await rt.limiter.afterAuth(ctx);
  if (limited) return limited;

  span?.phase('body');
  checkBodyIntegrity(request, rt.config.limits.maxBodyBytes);
  const parsed = parseMcp(request.body, request.hasBody, request.headers, rt.config.limits.maxJsonDepth);
  requireMessage(request, parsed.view);
  ctx.mcp = parsed.view;
  ctx.parsedBody = parsed.json;

  // Tool-definition pins: a call to a changed, unpinned or never-listed tool is refused, and a
  // pinned tool's annotations enter the policy input. Endpoints without pins wait for nothing.
  const pinned = rt.pins?.checkCalls(ctx);
  if (pinned !== undefined) {
    span?.phase('pins');
    const refused = await pinned;
    if (refused) return refused;
  }

  span?.phase('authorize');
  const authorized = rt.authorizer.authorize(ctx);
  const { record } = authorized;
  let { result } = authorized;
  trace.policy = record;
  // Dry-run, applied here once: the policy's own denies become allows, logged and counted
  // with the real decision; a policy that fails or returns garbage still denies.
  const dryRun = !result.allow && record !== undefined && !record.failed && rt.config.policy?.dryRun === true;
  // A call held for approval: only here does anything of the approvals run.
  if (!result.allow && result.approval !== undefined && !dryRun) {
    // An in-process store answers a grant at once: no promise to wait for.
    const answer = approve(rt, ctx, result.approval, record?.revision ?? '', trace.decisionId);
    const held = answer instanceof Promise ? await answer : answer;
    if (held.kind === 'deny') return held;
    trace.approval = held;
    result = { allow: true, headers: [], headersToRemove: [], responseHeaders: [] };
  }
  if (!result.allow && !dryRun) return result.deny;
  // Per-tool quotas count only what is about to go upstream: a denied call costs none.
  // Most requests name no counted call and get no promise to wait for.
  const quota = rt.limiter.afterPolicy?.(ctx);
  if (quota !== undefined) span?.phase('limits');
  const overQuota = quota instanceof Promise ? await quota : quota;
  if (overQuota) return overQuota;
  // The upstream's own credential, fetched only for what is about to go upstream: a forged,
  // expired or refused caller never reaches the token endpoint. Cached: no promise to wait for.
  const pending = rt.upstreamCredentials?.credentialFor(ctx);
  if (pending !== undefined) span?.phase('upstream_credentials');
  const upstream = pending instanceof Promise ? await pending : pending;
  if (upstream !== undefined && upstream.kind !== 'grant') return upstream;
  span?.phase('respond');
  if (trace.approval !== undefined && result.allow)
    result = { ...result, dynamicMetadata: { ...result.dynamicMetadata, approval: trace.approval.metadata } };
  return result.allow
    ? assembleAllow(ctx, result, 'allowed', rt.config, upstream)
    : dryRunAllow(rt, ctx, result.deny, record!.revision, upstream);
}

function approve(
  rt: Runtime,
  ctx: CheckContext,
  requirement: ApprovalRequirement,
  revision: string,
  decisionId: string,
): ApprovalGrant | Deny | Promise<ApprovalGrant | Deny> {
  if (rt.approvals === undefined)
    return deny(
      'approval_unavailable',
      'The policy requires a person to approve this call, and approvals are not configured (approvals in the config); denied.',
    );
  return rt.approvals.check(ctx, requirement, revision, decisionId);
}

/** An answer the transport cannot carry becomes a deny that says so (Envoy's http_service). */
function fitTransport(o: Outcome, request: Request): Outcome {
  const limits = request.answerLimits!;
  if (o.kind === 'answer' && !limits.answersDirectly) {
    if (o.orDeny) return o.orDeny;
    return deny(
      'discovery_not_routed',
      `mcp-authz serves ${request.path} on its HTTP port; Envoy's HTTP authorization service cannot answer it in place. Route /.well-known/oauth-protected-resource to mcp-authz's HTTP port.`,
    );
  }
  // Envoy's HTTP authorization service forwards the request on any 200: the held call is
  // refused with 403 and the same JSON-RPC message (the approval page's URL in it).
  if (o.kind === 'deny' && o.status === 200 && !limits.answersDirectly) return { ...o, status: 403 };
  if (o.kind !== 'allow') return o;
  if (o.queryParamsToRemove.length > 0 && !limits.removesQueryParams) {
    return deny(
      'query_not_removable',
      `The query parameter(s) ${o.queryParamsToRemove.join(', ')} must not reach the MCP server, and Envoy's HTTP authorization service cannot remove query parameters: send the API key in the X-API-Key header instead.`,
    );
  }
  const sets = limits.setsRequestHeader;
  if (sets !== undefined) {
    // Envoy copies an answer header upstream only when allowed_upstream_headers names it; any
    // other would leave the client's own value in place (a Cookie header with the session in it).
    for (let i = 0; i < o.headers.length; i++) {
      const h = o.headers[i]!;
      // The answer carries one value per header, replacing the client's: a value added to the client's own cannot be expressed.
      if (h.append && !o.headers.slice(0, i).some((e) => e.name === h.name))
        return notForwardable(
          `The request header ${h.name} must be added to the client's own value, which the HTTP authorization service cannot express.`,
        );
      if (!sets(h.name))
        return notForwardable(
          `The request header ${h.name} must be set before the request reaches the MCP server, and the HTTP authorization filter does not copy it upstream (extAuthzHttp.upstreamHeaders): add it to both the filter's allowed_upstream_headers and extAuthzHttp.upstreamHeaders.`,
        );
    }
    for (const h of o.responseHeaders) {
      if (sets(h.name))
        return notForwardable(
          `The policy's response header ${h.name} has a name the HTTP authorization filter copies upstream (extAuthzHttp.upstreamHeaders): it would reach the MCP server as a request header too. Rename it.`,
        );
    }
  }
  return o;
}

function notForwardable(description: string): Deny {
  return deny('header_not_forwardable', description);
}

function dryRunAllow(
  rt: Runtime,
  ctx: CheckContext,
  denied: Deny,
  revision: string,
  upstream: UpstreamGrant | undefined,
): Outcome {
  rt.events.dryRunDeny?.();
  rt.logger.info(
    {
      request_id: ctx.request.id,
      endpoint: ctx.endpoint?.name,
      principal: ctx.principal.id,
      status: denied.status,
      reason: denied.code,
      policy_revision: revision,
    },
    'dry-run: the policy denied this request; allowed',
  );
  return assembleAllow(ctx, NOTHING_TO_ADD, 'dry_run', rt.config, upstream);
}

function newContext(request: Request, rt: Runtime): CheckContext {
  return {
    request,
    endpoint: undefined,
    clientAddress: rt.clientAddress(request),
    principal: ANONYMOUS,
    credentialHeaders: [],
    credentialQueryParams: [],
    mcp: NO_MCP,
    parsedBody: undefined,
  };
}

function internalError(rt: Runtime, err: unknown, request: Request | undefined): Outcome {
  const requestId = request?.id ?? randomUUID();
  rt.logger.error({ err, request_id: requestId }, 'internal error during Check; denied');
  return internalErrorDeny(requestId);
}
