// The authorization code grant with PKCE (OAuth 2.1 §4.1), as an MCP client runs it: the
// request URL (S256 challenge, `state`, the RFC 8707 `resource`, the scopes), and the
// callback read strictly — `state` first, then RFC 9207 `iss`, then `error`, then `code`.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { LoginFailure } from './login-failure.js';

export interface Pkce {
  verifier: string;
  challenge: string;
}

/** A 43-character verifier (256 random bits) and its S256 challenge (RFC 7636 §4). */
export function newPkce(): Pkce {
  const verifier = randomBytes(32).toString('base64url');
  return { verifier, challenge: s256(verifier) };
}

export const s256 = (verifier: string) => createHash('sha256').update(verifier, 'ascii').digest('base64url');

export const newState = () => randomBytes(32).toString('base64url');

export interface AuthorizationRequest {
  authorizationEndpoint: string;
  clientId: string;
  redirectUri: string;
  pkce: Pkce;
  state: string;
  scopes: readonly string[];
  resource?: string;
}

/** The URL the browser opens. The endpoint's own query parameters are kept (RFC 6749 §3.1). */
export function authorizationUrl(r: AuthorizationRequest): string {
  const url = new URL(r.authorizationEndpoint);
  const set = (k: string, v: string) => url.searchParams.set(k, v);
  set('response_type', 'code');
  set('client_id', r.clientId);
  set('redirect_uri', r.redirectUri);
  set('code_challenge', r.pkce.challenge);
  set('code_challenge_method', 'S256');
  set('state', r.state);
  if (r.scopes.length > 0) set('scope', r.scopes.join(' '));
  if (r.resource !== undefined) set('resource', r.resource);
  return url.href;
}

export interface CallbackExpectation {
  state: string;
  /** The authorization server's issuer, from its metadata. */
  issuer: string;
  /** The server advertises RFC 9207: a callback without `iss` is refused. */
  issRequired: boolean;
}

const CALLBACK_PARAMS = ['state', 'code', 'iss', 'error', 'error_description', 'error_uri'];

/** Printable, bounded text from the server, for a message. */
const shown = (s: string) => JSON.stringify(s.length > 300 ? `${s.slice(0, 300)}…` : s);

/** Reads the redirect's query; returns the code or throws the failure it reports. */
export function readCallback(query: string, expect: CallbackExpectation): string {
  const params = new URLSearchParams(query);
  for (const name of CALLBACK_PARAMS) {
    if (params.getAll(name).length > 1) {
      throw new LoginFailure(
        'state_mismatch',
        `the redirect carries "${name}" more than once: it is not a response this login can trust, and is discarded`,
      );
    }
  }
  const state = params.get('state');
  if (state === null)
    throw new LoginFailure(
      'state_mismatch',
      'the redirect carries no "state": it is not the answer to this login, and is discarded',
    );
  const a = Buffer.from(state);
  const b = Buffer.from(expect.state);
  if (a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new LoginFailure(
      'state_mismatch',
      'the redirect\'s "state" is not the one this login sent: it is not the answer to this login (another tab, a replay or a forgery), and is discarded',
    );
  }
  const iss = params.get('iss');
  if (iss !== null && iss !== expect.issuer) {
    throw new LoginFailure(
      'issuer_mismatch',
      `the redirect comes from issuer ${shown(iss)}, not ${expect.issuer} (RFC 9207): a mix-up, discarded`,
    );
  }
  if (iss === null && expect.issRequired) {
    throw new LoginFailure(
      'issuer_mismatch',
      `the redirect carries no "iss" although ${expect.issuer} says it sends one (RFC 9207): discarded`,
    );
  }
  const error = params.get('error');
  if (error !== null) {
    const description = params.get('error_description');
    const detail = `${shown(error)}${description !== null ? `: ${shown(description)}` : ''}`;
    if (error === 'access_denied')
      throw new LoginFailure(
        'access_denied',
        `the authorization server refused the login (access_denied${description !== null ? `: ${shown(description)}` : ''})`,
      );
    throw new LoginFailure('authorization_error', `the authorization server answered with error ${detail}`);
  }
  const code = params.get('code');
  if (code === null || code === '')
    throw new LoginFailure('authorization_error', 'the redirect carries neither a code nor an error');
  return code;
}
