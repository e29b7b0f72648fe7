// Tokens on disk only when asked: `login --save FILE` writes mode 0600 through a new file
// renamed into place, and refuses a target that is a symlink, not a regular file, someone
// else's, or readable by others. `check --bearer` reads a token back: raw, or the JSON that
// `login --json` prints and `--save` writes.
import { lstatSync, statSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { writeFileAtomically } from '../config/atomic-write.js';
import { LoginFailure } from '../oauth-client/login-failure.js';

const octal = (mode: number) => `0${(mode & 0o777).toString(8)}`;

/** Throws save_refused when FILE must not receive a token. Called before the login starts. */
export function checkSaveTarget(file: string): void {
  const path = resolve(file);
  let st;
  try {
    st = lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT')
      throw new LoginFailure('save_refused', `--save ${file}: ${(err as Error).message}`);
    let dir;
    try {
      dir = statSync(dirname(path));
    } catch {
      throw new LoginFailure('save_refused', `--save ${file}: the folder ${dirname(path)} does not exist`);
    }
    if (!dir.isDirectory()) throw new LoginFailure('save_refused', `--save ${file}: ${dirname(path)} is not a folder`);
    return;
  }
  if (st.isSymbolicLink())
    throw new LoginFailure('save_refused', `--save ${file} is a symbolic link: refusing to write a token through it`);
  if (!st.isFile()) throw new LoginFailure('save_refused', `--save ${file} is not a regular file`);
  const uid = process.getuid?.();
  if (uid !== undefined && st.uid !== uid)
    throw new LoginFailure('save_refused', `--save ${file} belongs to another user (uid ${st.uid})`);
  if ((st.mode & 0o077) !== 0) {
    throw new LoginFailure(
      'save_refused',
      `--save ${file} has mode ${octal(st.mode)}: others could read the token. Run \`chmod 600 ${file}\` or choose a new file`,
    );
  }
}

/** Writes JSON to FILE with mode 0600, atomically (a new file, then rename). */
export function saveTokenFile(file: string, content: Record<string, unknown>): void {
  const path = resolve(file);
  checkSaveTarget(path);
  // Checked again before the rename: it may have changed while the user was in the browser.
  writeFileAtomically(path, `${JSON.stringify(content, null, 2)}\n`, 0o600, () => checkSaveTarget(path));
}

// RFC 6750 §2.1 b64token: what a Bearer credential may contain.
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export interface Bearer {
  token: string;
  /** Something the user should know (an expired token), not an error. */
  warning?: string;
}

/**
 * `--bearer VALUE`: the token itself, `@FILE`, or `-` for standard input; a file or input
 * may hold the token alone or login's JSON (`access_token`).
 */
export function readBearer(
  value: string,
  readStdin: () => string = () => readFileSync(0, 'utf8'),
  now = Date.now(),
): Bearer {
  const fromStdin = value === '-' || value === '@-';
  const source = fromStdin ? 'standard input' : value.startsWith('@') ? value.slice(1) : undefined;
  const text = (fromStdin ? readStdin() : source !== undefined ? readFileSync(source, 'utf8') : value).trim();
  const where = source ?? 'the --bearer value';
  if (text.startsWith('{')) {
    let doc: Record<string, unknown>;
    try {
      doc = JSON.parse(text) as Record<string, unknown>;
    } catch {
      throw new Error(`--bearer: ${where} starts with "{" but is not JSON`);
    }
    if (typeof doc.access_token !== 'string' || !B64TOKEN.test(doc.access_token))
      throw new Error(`--bearer: ${where} has no access_token (expected the JSON of mcp-authz login --json or --save)`);
    if (typeof doc.token_type === 'string' && doc.token_type.toLowerCase() !== 'bearer')
      throw new Error(`--bearer: ${where} holds a ${doc.token_type} token, not a Bearer token`);
    const expiresAt = typeof doc.expires_at === 'string' ? Date.parse(doc.expires_at) : NaN;
    return {
      token: doc.access_token,
      ...(Number.isFinite(expiresAt) && expiresAt <= now
        ? { warning: `the token in ${where} expired at ${doc.expires_at}: run mcp-authz login again` }
        : {}),
    };
  }
  if (text === '') throw new Error(`--bearer: ${where} is empty`);
  if (!B64TOKEN.test(text))
    throw new Error(
      `--bearer: ${where} is not a bearer token (one line of letters, digits and -._~+/, or login's JSON)`,
    );
  return { token: text };
}
