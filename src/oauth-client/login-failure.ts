// The ways an OAuth login can fail, each with a stable code (and, in the CLI, its own exit
// code), so a script can tell "the IdP is down" from "the user said no".

export const LOGIN_FAILURES = {
  unreachable:
    'an issuer, authorization server or MCP endpoint could not be reached (connection refused, DNS, TLS, no answer in time)',
  metadata_missing:
    'no protected-resource metadata (RFC 9728) or authorization server metadata (RFC 8414 / OpenID discovery) at any URL tried',
  metadata_invalid:
    'a metadata document is not usable: not JSON, a required field missing, no PKCE S256, plain http, a resource it does not cover',
  issuer_mismatch:
    "the authorization server's metadata names another issuer, or the callback's `iss` (RFC 9207) is not that issuer",
  client_registration:
    'no client identity: no --client-id, the server offers neither Client ID Metadata Documents nor registration, or registration was refused',
  port_in_use: 'the loopback port for the redirect is taken',
  state_mismatch:
    "the callback's `state` is missing or not the one sent: the response is not for this login, and is discarded",
  access_denied: 'the user (or the server on their behalf) refused: error=access_denied on the callback',
  authorization_error: 'any other error= on the callback (invalid_scope, invalid_target, server_error, …)',
  timeout: 'the login did not finish within --timeout',
  exchange_refused: 'the token endpoint refused the code, or answered without a usable access token',
  save_refused: '--save names a symlink, a non-regular file, or a file others can read or write',
} as const;

export type LoginFailureCode = keyof typeof LOGIN_FAILURES;

/** A login that cannot go on; `message` says what happened and what to do, never a secret. */
export class LoginFailure extends Error {
  constructor(
    readonly code: LoginFailureCode,
    message: string,
  ) {
    super(message);
    this.name = 'LoginFailure';
  }
}
