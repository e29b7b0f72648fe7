// `mcp-authz login`'s exit codes: one per way it can fail, stable for scripts, printed by
// `login --help` and listed in docs/login.md.
import { LOGIN_FAILURES, type LoginFailureCode } from '../oauth-client/login-failure.js';

export const LOGIN_EXIT_CODES: Record<LoginFailureCode, number> = {
  unreachable: 10,
  metadata_missing: 11,
  metadata_invalid: 12,
  issuer_mismatch: 13,
  client_registration: 14,
  port_in_use: 15,
  state_mismatch: 16,
  access_denied: 17,
  authorization_error: 18,
  timeout: 19,
  exchange_refused: 20,
  save_refused: 21,
};

/** The table of `login --help`: 0, 1, 2, then each failure. */
export function loginExitTable(): string {
  const rows: [string, string][] = [
    ['0', 'logged in: the access token is on standard output'],
    ['1', 'an unexpected error (the message says what)'],
    ['2', 'a usage error: a missing or malformed option'],
    ...(Object.entries(LOGIN_EXIT_CODES) as [LoginFailureCode, number][]).map(([code, n]): [string, string] => [
      String(n),
      `${code}: ${LOGIN_FAILURES[code]}`,
    ]),
  ];
  return rows.map(([n, text]) => `  ${n.padStart(2)}  ${text}`).join('\n');
}
