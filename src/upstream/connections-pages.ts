// The /connect/<provider> pages on the service's HTTP port, where a user connects their
// account at an upstream's authorization server (userConnections).
//
// Who the user is: the browser carries none of the MCP client's credentials, so the link in
// the elicitation carries it — a connect link sealed by the service (AES-256-GCM, the
// provider's key) naming the principal the elicitation answered, valid for
// connectLinkSeconds and usable once. The pages:
//
//   GET  /connect/<p>?link=…      a confirmation page naming the principal and the provider,
//                                 and a form; a CSRF cookie (SameSite=Strict, HttpOnly) whose
//                                 value the form repeats
//   POST /connect/<p>             cookie and form agree, the link opens and is claimed (once);
//                                 PKCE (S256) and state are made, sealed into a flow cookie
//                                 (SameSite=Lax: the authorization server's redirect back is a
//                                 cross-site top-level GET), and the browser is sent to the
//                                 authorization endpoint
//   GET  /connect/<p>/callback    the state matches the flow cookie's, the code is exchanged
//                                 with the verifier, the tokens are sealed and stored; a plain
//                                 success page
//
// Nothing a page shows comes unescaped from a request; no page shows a token.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { authorizationUrl, newPkce, newState, readCallback } from '../oauth-client/authorization-code.js';
import { LoginFailure } from '../oauth-client/login-failure.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { linkAad, type ConnectionProvider, type ConnectLink } from './connections.js';
import { UpstreamTokenError } from './token-endpoint.js';

const CSRF_COOKIE = 'mcp_authz_connect_csrf';
const FLOW_COOKIE = 'mcp_authz_connect_flow';
const FLOW_SECONDS = 600;
const MAX_FORM_BYTES = 16 * 1024;

interface Flow {
  p: string;
  u: string;
  state: string;
  verifier: string;
  exp: number;
}

const flowAad = (provider: string) => `connect-flow\n${provider}`;

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function page(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>${escapeHtml(title)}</title><style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5}code{background:#f3f3f3;padding:0 .2em}button{font-size:1rem;padding:.4rem 1rem}</style></head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

function cookies(req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at <= 0) continue;
    const name = part.slice(0, at).trim();
    if (!out.has(name)) out.set(name, part.slice(at + 1).trim());
  }
  return out;
}

function same(a: string | undefined, b: string | undefined): boolean {
  if (a === undefined || b === undefined) return false;
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const c of req) {
    size += (c as Buffer).length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(c as Buffer);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

export interface ConnectPagesOptions {
  providers: ReadonlyMap<string, ConnectionProvider>;
  logger: Logger;
  events: ServiceEvents;
  now?: () => number;
}

export class ConnectPages {
  private readonly now: () => number;

  constructor(private readonly opts: ConnectPagesOptions) {
    this.now = opts.now ?? Date.now;
  }

  /** Serves a /connect/ request; false when the path is not one of these pages. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://service.invalid');
    const m = /^\/connect\/([a-z0-9][a-z0-9_-]{0,62})(\/callback)?\/?$/.exec(url.pathname);
    if (!m) return false;
    const provider = this.opts.providers.get(m[1]!);
    const send = (status: number, title: string, body: string, headers: Record<string, string | string[]> = {}) => {
      res.writeHead(status, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-store',
        'x-frame-options': 'DENY',
        'content-security-policy':
          "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' https: http:; frame-ancestors 'none'",
        'referrer-policy': 'no-referrer',
        ...headers,
      });
      res.end(req.method === 'HEAD' ? undefined : page(title, body));
    };
    if (provider === undefined) {
      send(404, 'Unknown connection', '<p>No upstream account is connected at this address.</p>');
      return true;
    }
    const work =
      m[2] !== undefined
        ? req.method === 'GET'
          ? this.callback(provider, url, req, send)
          : Promise.resolve(send(405, 'Method not allowed', '', { allow: 'GET' }))
        : req.method === 'GET' || req.method === 'HEAD'
          ? Promise.resolve(this.confirm(provider, url, send))
          : req.method === 'POST'
            ? this.start(provider, req, send, res)
            : Promise.resolve(send(405, 'Method not allowed', '', { allow: 'GET, POST' }));
    work.catch((err: unknown) => {
      this.opts.logger.error({ provider: provider.name, err }, 'userConnections: a connect page failed');
      if (!res.headersSent)
        send(500, 'Something went wrong', '<p>The connection could not be made. Start again from your MCP client.</p>');
      else res.destroy();
    });
    return true;
  }

  private secure(provider: ConnectionProvider): string {
    return provider.connectUrl.startsWith('https://') ? '; Secure' : '';
  }

  /** Opens a connect link; a message for the user when it does not. */
  private openLink(provider: ConnectionProvider, text: string | null): ConnectLink | string {
    const ring = provider.keyRing;
    if (ring === undefined) return 'Connections to this provider are not configured yet.';
    if (text === null || text === '')
      return 'This page is opened from the link your MCP client shows; this address carries none.';
    let link: ConnectLink;
    try {
      link = JSON.parse(ring.open(linkAad(provider.name), text)) as ConnectLink;
    } catch {
      return 'This connect link is not valid. Start again from your MCP client.';
    }
    if (link.p !== provider.name || typeof link.u !== 'string' || typeof link.n !== 'string')
      return 'This connect link is not valid. Start again from your MCP client.';
    if (typeof link.exp !== 'number' || link.exp <= this.now())
      return 'This connect link has expired. Retry the call in your MCP client to get a new one.';
    return link;
  }

  private confirm(
    provider: ConnectionProvider,
    url: URL,
    send: (s: number, t: string, b: string, h?: Record<string, string | string[]>) => void,
  ): void {
    const linkText = url.searchParams.get('link');
    const link = this.openLink(provider, linkText);
    if (typeof link === 'string') {
      send(400, 'Cannot connect', `<p>${escapeHtml(link)}</p>`);
      return;
    }
    const csrf = randomBytes(24).toString('base64url');
    const path = `/connect/${provider.name}`;
    send(
      200,
      `Connect ${provider.name}`,
      `<p>The MCP gateway will use your <strong>${escapeHtml(provider.name)}</strong> account for the calls of <code>${escapeHtml(link.u)}</code>.</p><p>If that is not you, close this page.</p><form method="post" action="${escapeHtml(path)}"><input type="hidden" name="link" value="${escapeHtml(linkText!)}"><input type="hidden" name="csrf" value="${csrf}"><button type="submit" id="connect">Continue to ${escapeHtml(provider.name)}</button></form>`,
      {
        'set-cookie': `${CSRF_COOKIE}=${csrf}; Path=${path}; HttpOnly; SameSite=Strict; Max-Age=${FLOW_SECONDS}${this.secure(provider)}`,
      },
    );
  }

  private async start(
    provider: ConnectionProvider,
    req: IncomingMessage,
    send: (s: number, t: string, b: string, h?: Record<string, string | string[]>) => void,
    res: ServerResponse,
  ): Promise<void> {
    const form = await readForm(req);
    if (form === undefined) {
      send(400, 'Cannot connect', '<p>The form was not sent as a form.</p>');
      return;
    }
    // Double submit: a page on another site cannot read or send the Strict cookie.
    if (!same(cookies(req).get(CSRF_COOKIE), form.get('csrf') ?? undefined)) {
      send(
        403,
        'Cannot connect',
        '<p>This form was not sent from the confirmation page. Open the link from your MCP client again.</p>',
      );
      return;
    }
    const link = this.openLink(provider, form.get('link'));
    if (typeof link === 'string') {
      send(400, 'Cannot connect', `<p>${escapeHtml(link)}</p>`);
      return;
    }
    if (!(await provider.store.claimOnce(`${provider.name}:${link.n}`, Math.max(1000, link.exp - this.now())))) {
      send(
        400,
        'Cannot connect',
        '<p>This connect link has been used already. Retry the call in your MCP client to get a new one.</p>',
      );
      return;
    }
    let as;
    try {
      as = await provider.authorizationServer();
    } catch (err) {
      this.opts.logger.warn(
        { provider: provider.name, err: err instanceof Error ? err.message : String(err) },
        'userConnections: the authorization server metadata could not be read',
      );
      this.opts.events.upstreamConnection?.(provider.name, 'connect_failed');
      send(
        502,
        'Cannot connect',
        `<p>${escapeHtml(provider.name)}'s authorization server cannot be reached. Try again later.</p>`,
      );
      return;
    }
    const pkce = newPkce();
    const state = newState();
    const flow: Flow = {
      p: provider.name,
      u: link.u,
      state,
      verifier: pkce.verifier,
      exp: this.now() + FLOW_SECONDS * 1000,
    };
    const sealed = provider.requireKeys().seal(flowAad(provider.name), JSON.stringify(flow));
    const target = authorizationUrl({
      authorizationEndpoint: as.authorizationEndpoint,
      clientId: provider.cfg.client.id,
      redirectUri: provider.redirectUri,
      pkce,
      state,
      scopes: provider.cfg.scope,
      ...(provider.cfg.resource !== undefined ? { resource: provider.cfg.resource } : {}),
    });
    res.writeHead(303, {
      location: target,
      'cache-control': 'no-store',
      'set-cookie': [
        `${FLOW_COOKIE}=${sealed}; Path=/connect/${provider.name}/callback; HttpOnly; SameSite=Lax; Max-Age=${FLOW_SECONDS}${this.secure(provider)}`,
        `${CSRF_COOKIE}=; Path=/connect/${provider.name}; HttpOnly; SameSite=Strict; Max-Age=0${this.secure(provider)}`,
      ],
    });
    res.end();
  }

  private async callback(
    provider: ConnectionProvider,
    url: URL,
    req: IncomingMessage,
    send: (s: number, t: string, b: string, h?: Record<string, string | string[]>) => void,
  ): Promise<void> {
    const clear = {
      'set-cookie': `${FLOW_COOKIE}=; Path=/connect/${provider.name}/callback; HttpOnly; SameSite=Lax; Max-Age=0${this.secure(provider)}`,
    };
    const fail = (status: number, why: string, log: string) => {
      this.opts.events.upstreamConnection?.(provider.name, 'connect_failed');
      this.opts.logger.warn({ provider: provider.name, why: log }, 'userConnections: a connection was not made');
      send(status, 'Not connected', `<p>${escapeHtml(why)}</p>`, clear);
    };
    const ring = provider.keyRing;
    const cookie = cookies(req).get(FLOW_COOKIE);
    let flow: Flow | undefined;
    try {
      flow = ring && cookie ? (JSON.parse(ring.open(flowAad(provider.name), cookie)) as Flow) : undefined;
    } catch {
      flow = undefined;
    }
    if (flow === undefined || flow.p !== provider.name || flow.exp <= this.now()) {
      fail(
        400,
        'This browser did not start a connection here, or it took too long. Open the link from your MCP client again.',
        'no or expired flow cookie',
      );
      return;
    }
    const as = await provider.authorizationServer();
    let code: string;
    try {
      // Explicit endpoints name no issuer: RFC 9207's `iss` cannot be checked against one, and is set aside.
      const query = new URLSearchParams(url.search);
      if (as.issuer === '') query.delete('iss');
      code = readCallback(query.toString(), { state: flow.state, issuer: as.issuer, issRequired: as.issInCallback });
    } catch (err) {
      const why = err instanceof LoginFailure ? err.message : String(err);
      fail(
        400,
        err instanceof LoginFailure && err.code === 'access_denied'
          ? `You did not allow access at ${provider.name}; nothing was connected.`
          : `The answer from ${provider.name} cannot be used: ${why}`,
        why,
      );
      return;
    }
    try {
      const issued = await provider.tokenRequest(
        new URLSearchParams([
          ['grant_type', 'authorization_code'],
          ['code', code],
          ['redirect_uri', provider.redirectUri],
          ['code_verifier', flow.verifier],
        ]),
      );
      await provider.connect(flow.u, issued);
    } catch (err) {
      const why =
        err instanceof UpstreamTokenError
          ? `${err.code}: ${err.message}`
          : err instanceof Error
            ? err.message
            : String(err);
      fail(502, `${provider.name} did not issue a token for this connection. Try again from your MCP client.`, why);
      return;
    }
    send(
      200,
      'Connected',
      `<p id="connected">Your ${escapeHtml(provider.name)} account is connected for <code>${escapeHtml(flow.u)}</code>. Return to your MCP client and retry the call.</p>`,
      clear,
    );
  }
}
