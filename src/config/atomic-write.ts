// Writes a file so a reader — the service's file watcher, or a person — sees the old content or
// the new, never a half-written one: a new file beside it, synced, then renamed over it.
import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * Replaces `path` with `text` (created with `mode`). `beforeRename` runs after the new file is
 * written, just before it takes the old one's place: a check that throws leaves `path` as it was.
 */
export function writeFileAtomically(path: string, text: string, mode: number, beforeRename?: () => void): void {
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (err) {
    closeSync(fd);
    rmSync(tmp, { force: true });
    throw err;
  }
  closeSync(fd);
  try {
    beforeRename?.();
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
