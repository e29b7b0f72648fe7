// Reads a policy bundle as `opa build -t wasm` writes it — a .tar.gz file or an unpacked
// folder — into its policy.wasm, data.json and .manifest. Nothing here runs the policy.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

export class BundleError extends Error {
  readonly code = 'ERR_POLICY_BUNDLE';
}

export interface Manifest {
  revision?: string;
  roots?: string[];
  wasm?: { entrypoint: string; module: string }[];
  [k: string]: unknown;
}

export interface Bundle {
  /** Where it was read from (a file or folder path). */
  source: string;
  wasm: Uint8Array<ArrayBuffer>;
  data: Record<string, unknown>;
  manifest: Manifest;
  /** The manifest's revision, else a hash of policy.wasm and data.json. */
  revision: string;
}

const MAX_ENTRY_BYTES = 64 * 1024 * 1024;

/** Reads the bundle at `path`; `content`, when given, is the .tar.gz file's bytes already read. */
export function loadBundle(path: string, content?: Buffer): Bundle {
  if (content !== undefined) return fromFiles(path, readTarGz(path, content));
  let st;
  try {
    st = statSync(path);
  } catch (err) {
    throw new BundleError(`cannot read policy bundle ${path}: ${(err as Error).message}`);
  }
  const files = st.isDirectory() ? readFolder(path) : readTarGz(path, readFileSync(path));
  return fromFiles(path, files);
}

function readFolder(dir: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  for (const name of ['policy.wasm', 'data.json', '.manifest']) {
    const p = join(dir, name);
    if (existsSync(p)) files.set(name, readFileSync(p));
  }
  return files;
}

/** The files of a .tar.gz bundle (names without a leading "/"), unpacked up to `maxBytes`. */
export function readBundleArchive(source: string, raw: Buffer, maxBytes = 4 * MAX_ENTRY_BYTES): Map<string, Buffer> {
  return readTarGz(source, raw, maxBytes);
}

/** A bundle from its files, as read by readBundleArchive. */
export function bundleFromFiles(source: string, files: Map<string, Buffer>): Bundle {
  return fromFiles(source, files);
}

function readTarGz(file: string, raw: Buffer, maxBytes = 4 * MAX_ENTRY_BYTES): Map<string, Buffer> {
  if (raw.length < 2 || raw[0] !== 0x1f || raw[1] !== 0x8b) {
    throw new BundleError(
      `policy bundle ${file} is not a .tar.gz file (no gzip header); build it with \`npm run policy:build\` or \`opa build -t wasm\``,
    );
  }
  let tar: Buffer;
  try {
    tar = gunzipSync(raw, { maxOutputLength: maxBytes });
  } catch (err) {
    throw new BundleError(`policy bundle ${file} is not a valid gzip stream: ${(err as Error).message}`);
  }
  return readTar(tar, file);
}

/** A minimal ustar reader: regular files only, GNU long names and pax paths honoured. */
export function readTar(tar: Buffer, file: string): Map<string, Buffer> {
  const files = new Map<string, Buffer>();
  let off = 0;
  let longName: string | undefined;
  while (off + 512 <= tar.length) {
    const header = tar.subarray(off, off + 512);
    if (header.every((b) => b === 0)) break;
    if (!validChecksum(header))
      throw new BundleError(`policy bundle ${file} is not a tar archive (bad header checksum at byte ${off})`);
    const size = parseInt(cstr(header, 124, 12).trim() || '0', 8);
    if (!Number.isFinite(size) || size < 0 || size > MAX_ENTRY_BYTES)
      throw new BundleError(`policy bundle ${file} has an entry of invalid size`);
    const type = String.fromCharCode(header[156]!);
    const body = tar.subarray(off + 512, off + 512 + size);
    if (body.length !== size) throw new BundleError(`policy bundle ${file} is truncated`);
    const prefix = cstr(header, 345, 155);
    let name = longName ?? (prefix ? `${prefix}/${cstr(header, 0, 100)}` : cstr(header, 0, 100));
    longName = undefined;
    if (type === 'L') {
      longName = body.toString('utf8').replace(/\0+$/, '');
    } else if (type === 'x') {
      const m = /(?:^|\n)\d+ path=([^\n]*)\n/.exec(body.toString('utf8'));
      if (m) longName = m[1];
    } else if (type === '0' || type === '\0') {
      name = name.replace(/^(\.\/|\/)+/, '');
      files.set(name, Buffer.from(body));
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

function cstr(b: Buffer, start: number, len: number): string {
  const s = b.subarray(start, start + len);
  const end = s.indexOf(0);
  return s.subarray(0, end === -1 ? len : end).toString('utf8');
}

function validChecksum(h: Buffer): boolean {
  const stored = parseInt(cstr(h, 148, 8).trim(), 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return stored === sum;
}

function fromFiles(source: string, files: Map<string, Buffer>): Bundle {
  const wasm = files.get('policy.wasm');
  if (!wasm) {
    throw new BundleError(
      `policy bundle ${source} has no policy.wasm; build it with \`opa build -t wasm -e mcp/authz/decision\``,
    );
  }
  let manifest: Manifest = {};
  const m = files.get('.manifest');
  if (m) manifest = parseJsonObject(m, source, '.manifest') as Manifest;
  const d = files.get('data.json');
  const data = d ? (parseJsonObject(d, source, 'data.json') as Record<string, unknown>) : {};
  const revision =
    typeof manifest.revision === 'string' && manifest.revision !== ''
      ? manifest.revision
      : `sha256-${createHash('sha256')
          .update(wasm)
          .update(d ?? '')
          .digest('hex')
          .slice(0, 16)}`;
  return { source, wasm: new Uint8Array(wasm), data, manifest, revision };
}

function parseJsonObject(buf: Buffer, source: string, name: string): unknown {
  let v: unknown;
  try {
    v = JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new BundleError(`policy bundle ${source}: ${name} is not valid JSON (${(err as Error).message})`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v))
    throw new BundleError(`policy bundle ${source}: ${name} is not a JSON object`);
  return v;
}
