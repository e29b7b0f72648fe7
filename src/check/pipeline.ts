// One Check call, top to bottom:
//   normalize → direct answers → endpoint → limits → authenticate → MCP body → authorize → respond
// Each phase is a function or object from its own folder; this file only orders them.
import { randomUUID } from 'node:crypto';
import { ANONYMOUS } from '../auth/principal.js';
import { toRequest, type WireCheckRequest } from '../envoy/to-request.js';
import { checkBodyIntegrity, requireMessage } from '../request/body-integrity.js';
import { parseMcp } from '../request/json-rpc.js';
import { RequestRejected } from '../request/reject.js';
import type { Request } from '../request/types.js';
import type { CheckContext } from './context.js';
import { deny, type Allow, type Outcome } from './outcome.js';
import { identityHeaders } from './identity-headers.js';
import type { Runtime } from './runtime.js';

export interface CheckTrace {
  outcome: Outcome;
  ctx: CheckContext | undefined;
  durationNs: bigint;
}

/** Runs the whole pipeline on one decoded CheckRequest. Never throws: an internal error is a 503 deny. */
export async function runCheck(rt: Runtime, wire: WireCheckRequest): Promise<CheckTrace> {
  const started = process.hrtime.bigint();
  let ctx: CheckContext | undefined;
  let outcome: Outcome;
  try {
    const request = toRequest(wire, rt.config.limits);
    ctx = newContext(request, rt);
    outcome = await decide(rt, ctx);
  } catch (err) {
    outcome = err instanceof RequestRejected ? deny(err.status, err.code, err.description) : internalError(rt, err, ctx?.request);
  }
  const durationNs = process.hrtime.bigint() - started;
  rt.observer.decided(ctx, outcome, durationNs);
  return { outcome, ctx, durationNs };
}

async function decide(rt: Runtime, ctx: CheckContext): Promise<Outcome> {
  const { request } = ctx;

  const direct = rt.directResponder?.answer(request);
  if (direct) return direct;

  ctx.endpoint = rt.endpoints.match(request.path, request.host);

  const locked = await rt.limiter.beforeAuth(ctx);
  if (locked) return locked;

  const auth = await rt.authenticator.authenticate(request, ctx.endpoint);
  if (!auth.ok) {
    ctx.authFailure = auth.reason;
    if (auth.why !== undefined) ctx.authWhy = auth.why;
    if (auth.principal) ctx.principal = auth.principal;
    // A failure past the limit (concurrent attempts racing the lockout) is answered as the lockout.
    const lockedNow = auth.reason !== 'authentication_required' ? await rt.limiter.authFailed(ctx, auth.reason) : undefined;
    return lockedNow ?? auth.deny;
  }
  ctx.principal = auth.principal;
  ctx.credentialHeaders = auth.credentialHeaders;
  ctx.credentialQueryParams = auth.credentialQueryParams;

  if (!ctx.endpoint) {
    return deny(404, 'not_found', `No MCP endpoint is configured for ${request.path}.`);
  }

  const limited = await rt.limiter.afterAuth(ctx);
  if (limited) return limited;

  checkBodyIntegrity(request);
  const parsed = parseMcp(request.body, request.hasBody, request.headers, rt.config.limits.maxJsonDepth);
  requireMessage(request, parsed.view);
  ctx.mcp = parsed.view;
  ctx.parsedBody = parsed.json;

  const authz = rt.authorizer.authorize(ctx);
  if (!authz.allow) return authz.deny;

  const out: Allow = {
    allow: true,
    status: 200,
    headers: [...identityHeaders(ctx.principal), ...authz.headers],
    headersToRemove: [...authz.headersToRemove],
    queryParamsToRemove: [...(authz.queryParamsToRemove ?? [])],
    responseHeaders: authz.responseHeaders,
    reason: ctx.policy?.realDecision === 'deny' ? 'dry_run' : 'allowed',
  };
  if (authz.dynamicMetadata) out.dynamicMetadata = authz.dynamicMetadata;
  // A client can never forge an identity: identity headers not set here are removed.
  for (const name of IDENTITY_HEADER_NAMES) {
    if (!out.headers.some((h) => h.name === name)) out.headersToRemove.push(name);
  }
  if (rt.config.upstream.removeCredentials) {
    out.headersToRemove.push(...ctx.credentialHeaders);
    out.queryParamsToRemove.push(...ctx.credentialQueryParams);
  }
  // CGI and WSGI servers read "x_mcp_user_id" as X-MCP-User-Id: such spellings of identity
  // and credential headers are removed too.
  for (const name in request.headers) {
    if (!name.includes('_')) continue;
    const dashed = name.replaceAll('_', '-');
    if (IDENTITY_HEADER_SET.has(dashed) || (rt.config.upstream.removeCredentials && dashed === rt.config.apiKeys.header)) out.headersToRemove.push(name);
  }
  return out;
}

const IDENTITY_HEADER_NAMES = ['x-mcp-user-id', 'x-mcp-principal', 'x-mcp-auth-method', 'x-mcp-key-id'] as const;
const IDENTITY_HEADER_SET: ReadonlySet<string> = new Set(IDENTITY_HEADER_NAMES);

function newContext(request: Request, rt: Runtime): CheckContext {
  return {
    request,
    endpoint: undefined,
    clientAddress: rt.clientAddress(request),
    principal: ANONYMOUS,
    credentialHeaders: [],
    credentialQueryParams: [],
    mcp: { present: false, batch: false, protocolVersion: undefined, calls: [], source: 'none' },
    parsedBody: undefined,
  };
}

function internalError(rt: Runtime, err: unknown, request: Request | undefined): Outcome {
  const requestId = request?.id ?? randomUUID();
  rt.logger.error({ err, request_id: requestId }, 'internal error during Check; denied');
  return deny(503, 'internal_error', 'The authorization service failed to decide; the request is denied. Retry, and report the request_id if it persists.', {
    extra: { request_id: requestId },
  });
}
