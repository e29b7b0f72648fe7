// One AuthZEN evaluation, decided as the Check for the same MCP request would be: the
// evaluation becomes the request the asking gateway is about to forward (the endpoint's
// host and path, a JSON-RPC body with the method and its params), and runs through the one
// pipeline with the subject's principal in place of authentication. Everything after it —
// the MCP readers, the policy input, the policy, dry-run — is the Check's own, so the policy
// cannot tell an AuthZEN question from a Check. What a question must not do is left out:
// no limit or quota counts it, no upstream credential is fetched.
import { randomUUID } from 'node:crypto';
import type { AuthResult, Limiter } from '../decision/phases.js';
import type { CheckTrace } from '../decision/context.js';
import { badCredentialCode } from '../contracts/codes.js';
import { ANONYMOUS, type Principal } from '../contracts/principal.js';
import { deny, type Outcome } from '../contracts/outcome.js';
import type { Endpoint } from '../endpoints/registry.js';
import { toRequest, type WireCheckRequest } from '../envoy/to-request.js';
import { inForce } from '../pipeline/live-runtime.js';
import type { Runtime } from '../pipeline/runtime.js';
import { runCheck } from '../pipeline/pipeline.js';
import type { SubjectResult } from '../auth/subject-principals.js';
import { AuthzenBadRequest, type Evaluation } from './evaluation-request.js';

/** What the caller of one evaluation gets: the decision, a deny's code and status, and the decision id. */
export interface EvaluationResult {
  allow: boolean;
  code?: string;
  status?: number;
  decisionId: string;
}

const NO_LIMITS: Limiter = {
  beforeAuth: () => undefined,
  authFailed: () => undefined,
  afterAuth: () => undefined,
};

/** Resource types of the COAZ-MCP default mapping, and the params member their id fills. */
const RESOURCE_PARAM: Readonly<Record<string, 'name' | 'uri' | 'taskId' | undefined>> = {
  tool: 'name',
  prompt: 'name',
  resource: 'uri',
  task: 'taskId',
  mcp_server: undefined,
};

/** Decides one evaluation; a mapping the service cannot make is an AuthzenBadRequest. */
export async function evaluate(
  runtime: Runtime,
  e: Evaluation,
  peer: { address: string; requestId: string | undefined },
): Promise<EvaluationResult> {
  const rt = inForce(runtime);
  if (!Object.hasOwn(RESOURCE_PARAM, e.resource.type)) return generic(rt, e);
  const where = endpointOf(rt, e);
  const wire = requestFor(rt, e, where, peer);
  // Read before the pipeline runs: a subject the service cannot read is the caller's mistake (400), never a deny.
  const auth = subjectAuth(rt, e, where.endpoint);
  const view: Runtime = {
    ...rt,
    live: undefined,
    authenticator: { authenticate: () => auth },
    limiter: NO_LIMITS,
    directResponder: { answer: () => undefined },
    upstreamCredentials: undefined,
    tracing: undefined,
  };
  const trace: CheckTrace = await runCheck(view, toRequest, wire);
  return resultOf(trace.outcome, trace.decisionId);
}

function resultOf(o: Outcome, decisionId: string): EvaluationResult {
  if (o.allow) return { allow: true, decisionId };
  return { allow: false, code: o.kind === 'deny' ? o.code : 'not_an_mcp_request', status: o.status, decisionId };
}

/** A question about something other than an MCP request: the AuthZEN request itself is the input, `input.authzen`. */
function generic(rt: Runtime, e: Evaluation): EvaluationResult {
  if (!rt.config.authzen.genericEvaluations || !rt.authorizer.evaluateDocument)
    throw new AuthzenBadRequest(
      `resource.type "${e.resource.type}" is not an MCP resource type (one of ${Object.keys(RESOURCE_PARAM).join(', ')}); questions about other resources go to the policy only with authzen.genericEvaluations`,
    );
  const decisionId = randomUUID();
  const { result, record } = rt.authorizer.evaluateDocument(JSON.stringify({ authzen: e }));
  if (result.allow) return { allow: true, decisionId };
  // Dry-run, as for a Check: the policy's own denies are answered as allows; its failures are not.
  if (rt.config.policy?.dryRun === true && record !== undefined && !record.failed) return { allow: true, decisionId };
  return { allow: false, code: result.deny.code, status: result.deny.status, decisionId };
}

/** The endpoint asked about: resource.properties.endpoint (a name), an MCP server URL, or the only endpoint. */
function endpointOf(rt: Runtime, e: Evaluation): { endpoint: Endpoint; host: string; path: string } {
  const named = e.resource.properties.endpoint ?? e.context.endpoint;
  if (named !== undefined) {
    if (typeof named !== 'string') throw new AuthzenBadRequest('resource.properties.endpoint must be a string');
    const found = rt.endpoints.all.find((x) => x.name === named);
    if (!found) throw new AuthzenBadRequest(`no endpoint is named "${named}"`);
    return addressOf(rt, found);
  }
  const url = e.resource.type === 'mcp_server' ? e.resource.id : e.context.mcp_server;
  if (url !== undefined) {
    if (typeof url !== 'string') throw new AuthzenBadRequest('context.mcp_server must be a string');
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new AuthzenBadRequest(`the MCP server "${url}" is not a URL`);
    }
    const path = u.pathname || '/';
    const found = rt.endpoints.match(path, u.host);
    if (!found) throw new AuthzenBadRequest(`no endpoint serves ${url}`);
    return { endpoint: found, host: u.host, path };
  }
  if (rt.endpoints.all.length === 1) return addressOf(rt, rt.endpoints.all[0]!);
  throw new AuthzenBadRequest(
    'name the MCP endpoint: resource.properties.endpoint (its name) or context.mcp_server (its URL)',
  );
}

/** A host and path that reach the endpoint (a wildcard host stands for one of its names). */
function addressOf(rt: Runtime, endpoint: Endpoint): { endpoint: Endpoint; host: string; path: string } {
  const h = endpoint.match.host;
  const host =
    h === undefined
      ? 'authzen.invalid'
      : h.startsWith('*')
        ? `authzen${h.slice(1)}`
        : h.endsWith('*')
          ? `${h.slice(0, -1)}authzen`
          : h;
  const path = endpoint.metadataPath || '/';
  if (rt.endpoints.match(path, host) !== endpoint)
    throw new AuthzenBadRequest(
      `the endpoint "${endpoint.name}" cannot be addressed by name: name its URL in context.mcp_server`,
    );
  return { endpoint, host, path };
}

function requestFor(
  rt: Runtime,
  e: Evaluation,
  where: { host: string; path: string },
  peer: { address: string; requestId: string | undefined },
): WireCheckRequest {
  const method = e.action.name;
  const given = e.action.properties.params;
  if (given !== undefined && (given === null || typeof given !== 'object' || Array.isArray(given)))
    throw new AuthzenBadRequest('action.properties.params must be a JSON object');
  const params: Record<string, unknown> = { ...(given as Record<string, unknown> | undefined) };
  const member = RESOURCE_PARAM[e.resource.type];
  if (member !== undefined) params[member] = e.resource.id;
  const args = e.action.properties.arguments ?? e.resource.properties.arguments;
  if (args !== undefined) {
    if (args === null || typeof args !== 'object' || Array.isArray(args))
      throw new AuthzenBadRequest('action.properties.arguments must be a JSON object');
    params.arguments = args;
  }
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method, params });
  const id = peer.requestId ?? randomUUID();
  const headers: Record<string, string> = {
    ':authority': where.host,
    ':method': 'POST',
    ':path': where.path,
    ':scheme': 'https',
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    'content-length': String(Buffer.byteLength(body)),
    'x-request-id': id,
  };
  if (body.length > rt.config.limits.maxBodyBytes)
    throw new AuthzenBadRequest(`the MCP request this evaluation stands for is larger than limits.maxBodyBytes`);
  return {
    attributes: {
      source: { address: { socket_address: { address: peer.address, port_value: 0 } } },
      request: {
        http: {
          id,
          method: 'POST',
          headers,
          path: where.path,
          host: where.host,
          scheme: 'https',
          protocol: 'HTTP/1.1',
          body,
          size: String(Buffer.byteLength(body)),
        },
      },
    },
  };
}

/** Authentication replaced by the subject: the principal a Check makes for the same caller. */
function subjectAuth(rt: Runtime, e: Evaluation, endpoint: Endpoint): AuthResult {
  const auth = endpoint.auth;
  // An endpoint without authentication sees every caller as anonymous, as its Checks do.
  if (auth && !auth.apiKey && !auth.oauth && !auth.mtls) return ok(ANONYMOUS);
  const subjects = rt.subjects!;
  const { type, id, properties } = e.subject;
  let r: SubjectResult;
  let accepted: boolean | undefined;
  if (type === 'api_key') {
    accepted = auth?.apiKey;
    r = subjects.apiKey(id);
  } else if (type === 'identity' || type === 'user') {
    accepted = auth?.oauth;
    const iss = properties.iss ?? properties.issuer;
    const claims = properties.claims ?? {};
    if (iss !== undefined && typeof iss !== 'string')
      throw new AuthzenBadRequest('subject.properties.iss must be a string');
    if (claims === null || typeof claims !== 'object' || Array.isArray(claims))
      throw new AuthzenBadRequest('subject.properties.claims must be a JSON object');
    const agent = e.context.agent;
    const withAgent =
      typeof agent === 'string' && !Object.hasOwn(claims, 'client_id') ? { ...claims, client_id: agent } : claims;
    r = subjects.identity(id, iss, withAgent as Record<string, unknown>);
  } else if (type === 'workload') {
    accepted = auth?.mtls;
    r = subjects.workload(id);
  } else {
    throw new AuthzenBadRequest(`subject.type "${type}" is not one of api_key, identity (or user), workload`);
  }
  if (!accepted)
    return {
      ok: false,
      deny: deny('authentication_required', `The endpoint ${endpoint.name} does not accept a ${type} subject.`),
      detail: 'credential_missing',
      why: `the endpoint does not accept ${type} callers`,
    };
  if (!r.ok)
    return {
      ok: false,
      // The code a bad credential gets on this endpoint, as the Check answers it.
      deny: deny(badCredentialCode(auth), `The subject is not valid: ${r.why}.`),
      detail: r.detail,
      why: r.why,
    };
  return ok(r.principal);
}

function ok(principal: Principal): AuthResult {
  return { ok: true, principal, credentialHeaders: [], credentialQueryParams: [] };
}
