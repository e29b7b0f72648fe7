// Opens a URL in the user's browser: $BROWSER when set, else the platform's opener. No shell
// reads the URL (its & and ; stay characters): on Windows through url.dll's protocol handler
// rather than `cmd /c start`, which would split the URL at every &.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';

/**
 * $BROWSER as other tools read it: the first of a list separated by the platform's path
 * separator; a program's path as it is, else split at whitespace into a command and its
 * arguments (no quoting), with `%s` standing for the URL or the URL appended.
 */
export function browserCommand(
  url: string,
  env: NodeJS.ProcessEnv = process.env,
  platform: NodeJS.Platform = process.platform,
): [string, string[]] {
  const first = env.BROWSER?.split(platform === 'win32' ? ';' : ':')
    .map((c) => c.trim())
    .find(Boolean);
  if (first) {
    if (existsSync(first)) return [first, [url]]; // a path with spaces in it
    const [command, ...args] = first.split(/\s+/);
    const withUrl = args.includes('%s') ? args.map((a) => (a === '%s' ? url : a)) : [...args, url];
    return [command!, withUrl];
  }
  if (platform === 'darwin') return ['open', [url]];
  if (platform === 'win32') return ['rundll32', ['url.dll,FileProtocolHandler', url]];
  return ['xdg-open', [url]];
}

/** Resolves true once the opener started, false when it could not be run. */
export function openBrowser(url: string, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const [command, args] = browserCommand(url, env);
  return new Promise((resolve) => {
    let child;
    try {
      child = spawn(command, args, { detached: true, stdio: 'ignore' });
    } catch {
      resolve(false);
      return;
    }
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
}
