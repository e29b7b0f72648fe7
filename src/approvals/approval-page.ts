// The approval page on the service's HTTP port: /approvals/<id> shows who asks, which endpoint,
// tool and arguments (canonical JSON, secret arguments masked), the policy's reason, and lets an
// approver of the rule's group approve or reject. Approvers sign in at the OpenID provider
// (/approvals/callback). Cross-site requests cannot decide: the decision is a POST that must
// carry the page's CSRF token (bound to the approver's session and the approval), come from the
// page's own Origin, and the cookies are HttpOnly and SameSite. Plain HTML and CSS, no script.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApprovalsConfig } from '../config/approvals-schema.js';
import type { Config } from '../config/schema.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents } from '../metrics/hooks.js';
import { ApprovalStoreUnavailable, type StoredApproval } from './approval-store.js';
import { APPROVAL_ID, type ApprovalService } from './approval-service.js';
import { canonicalJson } from '../contracts/jcs.js';
import { ApproverSignIn, SignInFailed, type Approver, type PendingSignIn } from './approver-sign-in.js';
import type { ReceiptSigner } from './receipt.js';
import type { PinGuard } from '../pins/pin-guard.js';
import type { StoredReview } from '../pins/pin-state.js';

const SESSION_COOKIE = 'mcp_authz_approver';
const SIGN_IN_COOKIE = 'mcp_authz_sign_in';
const SESSION_SECONDS = 30 * 60;
const SIGN_IN_SECONDS = 10 * 60;
const MAX_FORM_BYTES = 4096;
const MASK = '•••••• (secret)';
/** The review of a changed tool definition: /approvals/pins/<32 hex digits>. */
const REVIEW_PATH = /^pins\/([0-9a-f]{32})$/;

interface Session extends Approver {
  sid: string;
  exp: number;
}

export interface ApprovalPageOptions {
  config: Config;
  approvals: ApprovalService;
  signer: ReceiptSigner;
  events: ServiceEvents;
  logger: Logger;
  /** Changed tool definitions are re-approved here too, when the pins name an approver group. */
  pins?: PinGuard;
  now?: () => number;
}

export class ApprovalPages {
  private readonly cfg: ApprovalsConfig;
  private readonly origin: string;
  private readonly secure: boolean;
  private readonly signIn: ApproverSignIn;
  private readonly secrets: Map<string, ReadonlySet<string>>;
  private readonly now: () => number;
  private key: Promise<Buffer> | undefined;

  constructor(private readonly opts: ApprovalPageOptions) {
    this.cfg = opts.config.approvals!;
    this.origin = new URL(this.cfg.publicUrl).origin;
    this.secure = this.cfg.publicUrl.startsWith('https:');
    this.signIn = new ApproverSignIn(this.cfg, `${this.cfg.publicUrl}/approvals/callback`);
    this.secrets = new Map(opts.config.endpoints.map((e) => [e.name, new Set(e.secretArguments ?? [])]));
    this.now = opts.now ?? Date.now;
  }

  /** Serves /approvals/…; false for any other path. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://service.invalid');
    if (url.pathname !== '/approvals' && !url.pathname.startsWith('/approvals/')) return false;
    this.route(req, res, url).catch((err: Error) => {
      this.opts.logger.error({ err }, 'the approval page failed');
      if (!res.headersSent)
        page(res, 503, 'Approvals are unavailable', `<p>The approval service failed to answer. Try again.</p>`);
    });
    return true;
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const rest = url.pathname.slice('/approvals/'.length);
    if (rest === 'keys' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/jwk-set+json', 'cache-control': 'max-age=300' });
      res.end(JSON.stringify(this.opts.signer.jwks()));
      return;
    }
    if (rest === 'callback' && req.method === 'GET') return this.callback(req, res, url);
    const review = REVIEW_PATH.exec(rest)?.[1];
    if (review !== undefined && this.opts.pins?.review !== undefined) {
      if (req.method === 'GET' || req.method === 'HEAD') return this.showReview(req, res, review);
      if (req.method === 'POST') return this.decideReview(req, res, review);
    }
    if (!APPROVAL_ID.test(rest)) return notFound(res);
    if (req.method === 'GET' || req.method === 'HEAD') return this.show(req, res, rest);
    if (req.method === 'POST') return this.decide(req, res, rest);
    res.writeHead(405, { allow: 'GET, HEAD, POST', 'content-type': 'text/plain' });
    res.end('method not allowed');
  }

  // ---------------------------------------------------------------- GET /approvals/<id>

  private async show(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const session = await this.session(req);
    if (session === undefined) return this.startSignIn(res, id);
    const stored = await this.load(res, id);
    if (stored === undefined) return;
    const { request } = stored;
    if (!session.groups.includes(request.group))
      return page(
        res,
        403,
        'Not an approver',
        `<p>You are signed in as <b>${esc(session.name)}</b>. Approving this call needs membership of the group <code>${esc(request.group)}</code>, which your sign-in does not carry.</p>`,
      );
    const token = await this.csrfToken(session, id);
    page(res, 200, `Approve ${request.tool}?`, this.details(stored, session, token));
  }

  private details(stored: StoredApproval, session: Session, csrf: string): string {
    const { request, decision } = stored;
    const now = this.now();
    const expired = stored.state === 'pending' && request.expiresAt <= now;
    const state = expired ? 'expired' : stored.state;
    const who = request.userId === undefined ? request.principal : `${request.userId} (${request.principal})`;
    const rows: [string, string][] = [
      ['Requested by', esc(who)],
      ['Endpoint', `<code>${esc(request.endpoint)}</code>`],
      ['Tool', `<code>${esc(request.tool)}</code>`],
      ['Why it is held', esc(request.reason)],
      ['Approvers', `<code>${esc(request.group)}</code> · rule <code>${esc(request.rule)}</code>`],
      [
        'The approval allows',
        `${request.uses === 1 ? 'this exact call once' : `this exact call ${request.uses} times`}, within ${duration(request.windowSeconds)} of approval`,
      ],
      ['Requested', `<time>${new Date(request.createdAt).toISOString()}</time>`],
      ['Call digest', `<code class="digest">${esc(request.digest)}</code>`],
    ];
    const table = rows.map(([k, v]) => `<tr><th scope="row">${k}</th><td>${v}</td></tr>`).join('');
    let footer: string;
    if (state === 'pending') {
      const self =
        request.userId !== undefined && (request.userId === session.subject || request.userId === session.name);
      footer = self
        ? `<p class="note">You asked for this call: another person of <code>${esc(request.group)}</code> must decide it.</p>`
        : `<form method="post" class="decide">
  <input type="hidden" name="csrf" value="${esc(csrf)}">
  <button type="submit" name="decision" value="approve" class="approve">Approve this call</button>
  <button type="submit" name="decision" value="reject" class="reject">Reject</button>
</form>
<p class="note">Expires <time>${new Date(request.expiresAt).toISOString()}</time> if nobody decides.</p>`;
    } else if (state === 'expired') {
      footer = `<p class="state expired">This request expired without a decision. The caller can retry to ask again.</p>`;
    } else {
      footer = `<p class="state ${state}">${state === 'granted' ? 'Approved' : 'Rejected'} by <b>${esc(decision?.approver ?? '?')}</b> at <time>${new Date(decision?.decidedAt ?? 0).toISOString()}</time>.</p>`;
    }
    return `<p class="who">Signed in as <b>${esc(session.name)}</b></p>
<table class="facts">${table}</table>
<h2>Arguments</h2>
<pre class="args">${esc(this.maskedArguments(request.endpoint, request.arguments))}</pre>
${footer}`;
  }

  /** The canonical arguments, pretty-printed, with the endpoint's secret arguments masked at any depth. */
  private maskedArguments(endpoint: string, canonical: string): string {
    const secret = this.secrets.get(endpoint) ?? new Set<string>();
    const mask = (v: unknown): unknown => {
      if (Array.isArray(v)) return v.map(mask);
      if (v !== null && typeof v === 'object')
        return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, secret.has(k) ? MASK : mask(x)]));
      return v;
    };
    return pretty(canonicalJson(mask(JSON.parse(canonical))));
  }

  // ---------------------------------------------------------------- POST /approvals/<id>

  private async decide(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    // A browser names the page's origin on every POST; another site's form cannot.
    if (req.headers.origin !== this.origin)
      return page(res, 403, 'Refused', '<p>This decision did not come from the approval page (Origin).</p>');
    const form = await readForm(req);
    if (form === undefined) return page(res, 400, 'Refused', '<p>The form could not be read.</p>');
    const session = await this.session(req);
    if (session === undefined)
      return page(res, 401, 'Sign in again', '<p>Your sign-in expired. Open the page again.</p>');
    if (!safeEqual(form.get('csrf') ?? '', await this.csrfToken(session, id)))
      return page(res, 403, 'Refused', '<p>The form is stale or forged (CSRF token). Open the page again.</p>');
    const choice = form.get('decision');
    if (choice !== 'approve' && choice !== 'reject') return page(res, 400, 'Refused', '<p>Approve or reject.</p>');
    const stored = await this.load(res, id);
    if (stored === undefined) return;
    const { request } = stored;
    if (!session.groups.includes(request.group))
      return page(
        res,
        403,
        'Not an approver',
        `<p>Deciding needs membership of <code>${esc(request.group)}</code>.</p>`,
      );
    if (request.userId !== undefined && (request.userId === session.subject || request.userId === session.name))
      return page(res, 403, 'Not yours to decide', '<p>Another person must decide a call you asked for.</p>');
    const now = this.now();
    if (stored.state === 'pending' && request.expiresAt <= now)
      return page(res, 410, 'Expired', '<p>This request expired without a decision.</p>');
    const granted = choice === 'approve';
    const done = await this.opts.approvals.decide(stored, granted, session.name, now);
    if (done) {
      this.opts.events.approval?.(granted ? 'granted' : 'rejected');
      this.opts.logger.info(
        {
          approval_id: id,
          approver: session.name,
          decision: granted ? 'granted' : 'rejected',
          digest: request.digest,
          endpoint: request.endpoint,
          tool: request.tool,
          principal: request.principal,
        },
        granted ? 'call approved' : 'call rejected',
      );
    }
    // Post/redirect/get: the page shows the state as it now stands.
    res.writeHead(303, { location: `/approvals/${id}`, 'cache-control': 'no-store' });
    res.end();
  }

  private async load(res: ServerResponse, id: string): Promise<StoredApproval | undefined> {
    try {
      const stored = await this.opts.approvals.store.byId(id);
      if (stored === undefined) notFound(res);
      return stored;
    } catch (err) {
      if (!(err instanceof ApprovalStoreUnavailable)) throw err;
      page(res, 503, 'Approvals are unavailable', '<p>The approval store cannot be reached. Try again shortly.</p>');
      return undefined;
    }
  }

  // ---------------------------------------------------------------- /approvals/pins/<id>

  private async showReview(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    const session = await this.session(req);
    if (session === undefined) return this.startSignIn(res, `pins/${id}`);
    const group = this.opts.pins!.review!.group;
    if (!session.groups.includes(group))
      return page(
        res,
        403,
        'Not an approver',
        `<p>You are signed in as <b>${esc(session.name)}</b>. Re-approving a tool definition needs membership of the group <code>${esc(group)}</code>, which your sign-in does not carry.</p>`,
      );
    const stored = await this.loadReview(res, id);
    if (stored === undefined) return;
    const token = await this.csrfToken(session, `pins/${id}`);
    page(res, 200, `Re-approve ${stored.review.name}?`, this.reviewDetails(stored, session, token));
  }

  private reviewDetails(stored: StoredReview, session: Session, csrf: string): string {
    const { review, decision } = stored;
    const what = review.kind === 'tools' ? 'tool' : review.kind === 'prompts' ? 'prompt' : 'resource template';
    const rows: [string, string][] = [
      ['Endpoint', `<code>${esc(review.endpoint)}</code>`],
      [what[0]!.toUpperCase() + what.slice(1), `<code>${esc(review.name)}</code>`],
      [
        'Pinned',
        review.pinned === undefined ? 'nothing: a new ' + what : `<code class="digest">${esc(review.pinned)}</code>`,
      ],
      ['Listed now', `<code class="digest">${esc(review.listed)}</code>`],
      ['First listed', `<time>${new Date(review.requestedAt).toISOString()}</time>`],
    ];
    const table = rows.map(([k, v]) => `<tr><th scope="row">${k}</th><td>${v}</td></tr>`).join('');
    const before =
      review.pinnedDefinition === undefined ? [] : pretty(canonicalJson(review.pinnedDefinition)).split('\n');
    const after = pretty(canonicalJson(review.definition)).split('\n');
    const diff = lineDiff(before, after)
      .map(
        ([op, line]) => `<span class="${op === '+' ? 'add' : op === '-' ? 'del' : 'same'}">${op} ${esc(line)}</span>`,
      )
      .join('');
    const note =
      review.pinned !== undefined && review.pinnedDefinition === undefined
        ? '<p class="note">The pin holds only a digest, so the old definition cannot be shown: every line is the new one.</p>'
        : '';
    let footer: string;
    if (decision === undefined) {
      footer = `<form method="post" class="decide">
  <input type="hidden" name="csrf" value="${esc(csrf)}">
  <button type="submit" name="decision" value="approve" class="approve">Approve the new definition</button>
  <button type="submit" name="decision" value="reject" class="reject">Reject</button>
</form>
<p class="note">Approving pins the new definition on every replica: the ${what} shows in lists again and its calls pass. Rejecting keeps it hidden and refused. Fold approved definitions into the pins file with <code>mcp-authz pins approved --apply</code>.</p>`;
    } else {
      footer = `<p class="state ${decision.state}">${decision.state === 'granted' ? 'Approved' : 'Rejected'} by <b>${esc(decision.approver)}</b> at <time>${new Date(decision.decidedAt).toISOString()}</time>.</p>`;
    }
    return `<p class="who">Signed in as <b>${esc(session.name)}</b></p>
<table class="facts">${table}</table>
<h2>What changed (canonical JSON)</h2>
${note}<pre class="args diff">${diff}</pre>
${footer}`;
  }

  private async decideReview(req: IncomingMessage, res: ServerResponse, id: string): Promise<void> {
    if (req.headers.origin !== this.origin)
      return page(res, 403, 'Refused', '<p>This decision did not come from the approval page (Origin).</p>');
    const form = await readForm(req);
    if (form === undefined) return page(res, 400, 'Refused', '<p>The form could not be read.</p>');
    const session = await this.session(req);
    if (session === undefined)
      return page(res, 401, 'Sign in again', '<p>Your sign-in expired. Open the page again.</p>');
    if (!safeEqual(form.get('csrf') ?? '', await this.csrfToken(session, `pins/${id}`)))
      return page(res, 403, 'Refused', '<p>The form is stale or forged (CSRF token). Open the page again.</p>');
    const choice = form.get('decision');
    if (choice !== 'approve' && choice !== 'reject') return page(res, 400, 'Refused', '<p>Approve or reject.</p>');
    const group = this.opts.pins!.review!.group;
    if (!session.groups.includes(group))
      return page(res, 403, 'Not an approver', `<p>Deciding needs membership of <code>${esc(group)}</code>.</p>`);
    const stored = await this.loadReview(res, id);
    if (stored === undefined) return;
    const granted = choice === 'approve';
    let done: boolean;
    try {
      done = await this.opts.pins!.state.decideReview(id, {
        state: granted ? 'granted' : 'rejected',
        approver: session.name,
        decidedAt: this.now(),
      });
    } catch (err) {
      this.opts.logger.warn({ err: { message: (err as Error).message } }, 'the pin state did not answer');
      return page(res, 503, 'Unavailable', '<p>The pin state cannot be reached. Try again shortly.</p>');
    }
    if (done) {
      const { review } = stored;
      this.opts.logger.info(
        {
          review_id: id,
          approver: session.name,
          decision: granted ? 'granted' : 'rejected',
          endpoint: review.endpoint,
          kind: review.kind,
          name: review.name,
          pinned: review.pinned,
          listed: review.listed,
        },
        granted ? 'changed definition re-approved' : 'changed definition rejected',
      );
    }
    res.writeHead(303, { location: `/approvals/pins/${id}`, 'cache-control': 'no-store' });
    res.end();
  }

  private async loadReview(res: ServerResponse, id: string): Promise<StoredReview | undefined> {
    try {
      const stored = await this.opts.pins!.state.review(id);
      if (stored === undefined)
        page(
          res,
          404,
          'No such review',
          '<p>There is no changed definition to review at this address, or it has expired.</p>',
        );
      return stored;
    } catch (err) {
      this.opts.logger.warn({ err: { message: (err as Error).message } }, 'the pin state did not answer');
      page(res, 503, 'Unavailable', '<p>The pin state cannot be reached. Try again shortly.</p>');
      return undefined;
    }
  }

  // ---------------------------------------------------------------- sign-in

  private async startSignIn(res: ServerResponse, id: string): Promise<void> {
    let started: { url: string; pending: PendingSignIn };
    try {
      started = await this.signIn.start();
    } catch (err) {
      this.opts.logger.warn({ err: { message: (err as Error).message } }, 'approver sign-in cannot start');
      return page(res, 503, 'Sign-in unavailable', '<p>The sign-in provider cannot be reached. Try again shortly.</p>');
    }
    const cookie = await this.seal({ ...started.pending, id, exp: this.now() + SIGN_IN_SECONDS * 1000 });
    res.writeHead(302, {
      location: started.url,
      'set-cookie': this.cookie(SIGN_IN_COOKIE, cookie, SIGN_IN_SECONDS),
      'cache-control': 'no-store',
    });
    res.end();
  }

  private async callback(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const pending = await this.unseal<PendingSignIn & { id: string; exp: number }>(cookieOf(req, SIGN_IN_COOKIE));
    if (pending === undefined || pending.exp <= this.now())
      return page(
        res,
        400,
        'Sign-in failed',
        '<p>The sign-in took too long or began elsewhere. Open the approval link again.</p>',
      );
    let approver: Approver;
    try {
      approver = await this.signIn.finish(url.searchParams, pending);
    } catch (err) {
      if (!(err instanceof SignInFailed)) throw err;
      this.opts.logger.warn({ err: { message: err.message } }, 'approver sign-in failed');
      return page(res, 401, 'Sign-in failed', `<p>${esc(err.message)}.</p>`);
    }
    const session: Session = {
      ...approver,
      sid: randomBytes(16).toString('base64url'),
      exp: this.now() + SESSION_SECONDS * 1000,
    };
    res.writeHead(303, {
      location:
        APPROVAL_ID.test(pending.id) || REVIEW_PATH.test(pending.id) ? `/approvals/${pending.id}` : '/approvals/',
      'set-cookie': [
        this.cookie(SESSION_COOKIE, await this.seal(session), SESSION_SECONDS),
        this.cookie(SIGN_IN_COOKIE, '', 0),
      ],
      'cache-control': 'no-store',
    });
    res.end();
  }

  private async session(req: IncomingMessage): Promise<Session | undefined> {
    const s = await this.unseal<Session>(cookieOf(req, SESSION_COOKIE));
    return s !== undefined && s.exp > this.now() && Array.isArray(s.groups) ? s : undefined;
  }

  /**
   * SameSite=Lax: the provider's redirect back is a top-level navigation from another site, on
   * which a Strict cookie would not come; every decision is a POST that Lax keeps from other
   * sites, and the Origin check and the CSRF token refuse it besides.
   */
  private cookie(name: string, value: string, maxAge: number): string {
    return `${name}=${value}; Path=/approvals; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${this.secure ? '; Secure' : ''}`;
  }

  private async csrfToken(session: Session, id: string): Promise<string> {
    return csrfToken(await this.sessionKey(), session.sid, id);
  }

  private async seal(value: unknown): Promise<string> {
    return seal(await this.sessionKey(), value);
  }

  private async unseal<T>(sealed: string | undefined): Promise<T | undefined> {
    if (sealed === undefined) return undefined;
    const dot = sealed.indexOf('.');
    if (dot < 0) return undefined;
    const body = sealed.slice(0, dot);
    const mac = createHmac('sha256', await this.sessionKey())
      .update(body)
      .digest('base64url');
    if (!safeEqual(sealed.slice(dot + 1), mac)) return undefined;
    try {
      return JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as T;
    } catch {
      return undefined;
    }
  }

  private sessionKey(): Promise<Buffer> {
    const file = this.cfg.sessionKeyFile;
    this.key ??=
      file === undefined
        ? Promise.resolve(randomBytes(32))
        : readFile(file).then((k) => {
            if (k.length < 32) throw new Error(`approvals.sessionKeyFile ${file} holds fewer than 32 bytes`);
            return k;
          });
    return this.key;
  }
}

// ---------------------------------------------------------------- helpers

/** A cookie value only the holder of the session key can make: base64url JSON, a dot, its HMAC. */
export function seal(key: Buffer, value: unknown): string {
  const body = Buffer.from(JSON.stringify(value)).toString('base64url');
  return `${body}.${createHmac('sha256', key).update(body).digest('base64url')}`;
}

/** The form token of one approver session for one page: a form from elsewhere cannot carry it. */
export function csrfToken(key: Buffer, sid: string, id: string): string {
  return createHmac('sha256', key).update(`csrf\0${sid}\0${id}`).digest('base64url');
}

/** The approver's session cookie (name and sealed value), as the sign-in callback sets it. */
export const APPROVER_SESSION_COOKIE = SESSION_COOKIE;

function cookieOf(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  let found: string | undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0 || part.slice(0, eq).trim() !== name) continue;
    // Two cookies of one name (one planted by a sibling domain): trust neither.
    if (found !== undefined) return undefined;
    found = part.slice(eq + 1).trim();
  }
  return found;
}

function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

async function readForm(req: IncomingMessage): Promise<URLSearchParams | undefined> {
  if (!(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) return undefined;
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function notFound(res: ServerResponse): void {
  page(res, 404, 'No such approval', '<p>There is no approval at this address, or it has expired.</p>');
}

function duration(seconds: number): string {
  if (seconds % 3600 === 0) return `${seconds / 3600} h`;
  if (seconds % 60 === 0) return `${seconds / 60} min`;
  return `${seconds} s`;
}

/** A line diff (longest common subsequence): each line of `a` and `b` once, marked ' ', '-' or '+'. */
export function lineDiff(a: readonly string[], b: readonly string[]): [' ' | '-' | '+', string][] {
  // Definitions are small (a few hundred lines at most); past that, the whole old, then the whole new.
  if (a.length * b.length > 4_000_000)
    return [...a.map((l) => ['-', l] as ['-', string]), ...b.map((l) => ['+', l] as ['+', string])];
  const n = a.length;
  const m = b.length;
  const lcs = Array.from({ length: n + 1 }, () => new Uint32Array(m + 1));
  for (let i = n - 1; i >= 0; i--)
    for (let j = m - 1; j >= 0; j--)
      lcs[i]![j] = a[i] === b[j] ? lcs[i + 1]![j + 1]! + 1 : Math.max(lcs[i + 1]![j]!, lcs[i]![j + 1]!);
  const out: [' ' | '-' | '+', string][] = [];
  let i = 0;
  let j = 0;
  while (i < n && j < m) {
    if (a[i] === b[j]) {
      out.push([' ', a[i]!]);
      i++;
      j++;
    } else if (lcs[i + 1]![j]! >= lcs[i]![j + 1]!) out.push(['-', a[i++]!]);
    else out.push(['+', b[j++]!]);
  }
  while (i < n) out.push(['-', a[i++]!]);
  while (j < m) out.push(['+', b[j++]!]);
  return out;
}

/** Canonical JSON, indented two spaces (its member order kept). */
function pretty(canonical: string): string {
  let out = '';
  let depth = 0;
  let inString = false;
  for (let i = 0; i < canonical.length; i++) {
    const c = canonical[i]!;
    if (inString) {
      out += c;
      if (c === '\\') out += canonical[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    const nl = () => `\n${'  '.repeat(depth)}`;
    if (c === '"') inString = true;
    if ((c === '{' || c === '[') && canonical[i + 1] !== (c === '{' ? '}' : ']')) {
      depth++;
      out += c + nl();
    } else if ((c === '}' || c === ']') && canonical[i - 1] !== (c === '}' ? '{' : '[')) {
      depth--;
      out += nl() + c;
    } else if (c === ',') out += c + nl();
    else if (c === ':') out += ': ';
    else out += c;
  }
  return out;
}

const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ESC[c]!);
}

const STYLE = `
:root { color-scheme: light dark; --bg: #f6f7f9; --card: #fff; --ink: #1c2330; --muted: #5b6475; --line: #e3e6eb;
  --ok: #1a7f4b; --no: #b42318; --accent: #2f5bd3; }
@media (prefers-color-scheme: dark) { :root { --bg: #12151b; --card: #1b2029; --ink: #e8ebf0; --muted: #9aa3b2;
  --line: #2c3340; --ok: #3fb97a; --no: #f0695d; --accent: #7c9cff; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink); font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; }
main { max-width: 46rem; margin: 3rem auto; padding: 2rem 2.25rem; background: var(--card); border: 1px solid var(--line);
  border-radius: 14px; box-shadow: 0 8px 30px rgb(0 0 0 / 6%); }
header { display: flex; align-items: center; gap: .6rem; color: var(--muted); font-size: .85rem; letter-spacing: .02em; }
header .dot { width: .6rem; height: .6rem; border-radius: 50%; background: var(--accent); }
h1 { margin: .4rem 0 1.2rem; font-size: 1.6rem; }
h2 { font-size: 1rem; margin: 1.6rem 0 .5rem; color: var(--muted); text-transform: uppercase; letter-spacing: .06em; }
.who { color: var(--muted); margin-top: -.6rem; }
table.facts { width: 100%; border-collapse: collapse; }
table.facts th { text-align: left; font-weight: 500; color: var(--muted); width: 11rem; vertical-align: top; padding: .45rem 0; }
table.facts td { padding: .45rem 0; border-bottom: 1px solid var(--line); }
table.facts tr:last-child td { border-bottom: 0; }
code { font: .9em ui-monospace, SFMono-Regular, Menlo, monospace; }
code.digest { font-size: .78em; word-break: break-all; color: var(--muted); }
pre.args { margin: 0; padding: 1rem; background: var(--bg); border: 1px solid var(--line); border-radius: 10px;
  font: .9rem/1.45 ui-monospace, SFMono-Regular, Menlo, monospace; white-space: pre-wrap; word-break: break-word; }
form.decide { display: flex; gap: .75rem; margin-top: 1.6rem; }
button { font: inherit; font-weight: 600; border-radius: 10px; padding: .7rem 1.3rem; cursor: pointer; border: 1px solid transparent; }
button.approve { background: var(--ok); color: #fff; }
button.reject { background: transparent; color: var(--no); border-color: var(--no); }
button:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
.note { color: var(--muted); font-size: .9rem; }
pre.diff span { display: block; padding: 0 .4rem; border-radius: 4px; }
pre.diff .add { background: color-mix(in srgb, var(--ok) 14%, transparent); }
pre.diff .del { background: color-mix(in srgb, var(--no) 14%, transparent); text-decoration: line-through; text-decoration-color: color-mix(in srgb, var(--no) 50%, transparent); }
pre.diff .same { color: var(--muted); }
.state { margin-top: 1.6rem; padding: .8rem 1rem; border-radius: 10px; border: 1px solid var(--line); }
.state.granted { border-color: var(--ok); color: var(--ok); }
.state.rejected, .state.expired { border-color: var(--no); color: var(--no); }
`;

function page(res: ServerResponse, status: number, title: string, body: string): void {
  const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="same-origin"><title>${esc(title)} · mcp-authz</title><style>${STYLE}</style></head>
<body><main><header><span class="dot"></span>mcp-authz · approval</header><h1>${esc(title)}</h1>
${body}
</main></body></html>`;
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // No script, no framing, nothing loaded from elsewhere; forms post only here.
    'content-security-policy':
      "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    'x-content-type-options': 'nosniff',
    // same-origin, not no-referrer: the page's own POST must carry its Origin (no-referrer makes it "null").
    'referrer-policy': 'same-origin',
  });
  res.end(body === '' ? undefined : html);
}
