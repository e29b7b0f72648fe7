// Reads the YAML config, applies environment overrides, validates it against the schema
// and resolves relative file paths against the config file's folder.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { hashApiKey } from '../contracts/api-key.js';
import { ConfigSchema, type Config } from './schema.js';

export class ConfigError extends Error {
  readonly code = 'ERR_CONFIG';
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid configuration in ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

export interface LoadedConfig {
  config: Config;
  /** Absolute path of the config file, or undefined for a config built in memory. */
  file: string | undefined;
  /** Folder relative paths were resolved against. */
  baseDir: string;
  /** The file's parsed content before validation: endpoints from a store are added to it and the whole validated again. */
  raw?: unknown;
  /** With endpoints from a store: the file's own content, and the rows that joined its endpoints. */
  storeEndpoints?: { fileRaw: unknown; rows: Record<string, unknown>[] };
}

type Env = Record<string, string | undefined>;

/** Parses and validates a config file. Throws ConfigError naming every bad field. */
export function loadConfigFile(file: string, env: Env = process.env): LoadedConfig {
  const abs = resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf8');
  } catch (err) {
    throw new ConfigError(abs, [`cannot read file: ${(err as Error).message}`]);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { uniqueKeys: true }) ?? {};
  } catch (err) {
    throw new ConfigError(abs, [`not valid YAML: ${(err as Error).message}`]);
  }
  return { config: validateConfig(raw, abs, dirname(abs), env), file: abs, baseDir: dirname(abs), raw };
}

/** Validates an in-memory config object (already parsed), applying env overrides. */
export function validateConfig(raw: unknown, source: string, baseDir: string, env: Env = process.env): Config {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(source, ['the top level must be a mapping of settings']);
  }
  const withEnv = applyEnv(structuredClone(raw) as Record<string, unknown>, env, source);
  const result = ConfigSchema.safeParse(withEnv);
  if (!result.success) {
    throw new ConfigError(
      source,
      result.error.issues.map((i) => `${i.path.length ? i.path.join('.') : '(top level)'}: ${i.message}`),
    );
  }
  return resolvePaths(result.data, baseDir);
}

function section(obj: Record<string, unknown>, key: string): Record<string, unknown> {
  const v = obj[key];
  if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  const fresh: Record<string, unknown> = {};
  obj[key] = fresh;
  return fresh;
}

function envNumber(env: Env, name: string, source: string): number | undefined {
  const v = env[name];
  if (v === undefined || v === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0)
    throw new ConfigError(source, [`${name}: expected a non-negative number, got ${JSON.stringify(v)}`]);
  return n;
}

/** The environment variables (README "Configuration"), layered over the file. */
function applyEnv(raw: Record<string, unknown>, env: Env, source: string): Record<string, unknown> {
  const issuer = env.MCP_OAUTH_ISSUER;
  if (issuer) {
    const oauth = section(raw, 'oauth');
    const issuers = Array.isArray(oauth.issuers) ? (oauth.issuers as Record<string, unknown>[]) : [];
    const entry: Record<string, unknown> = issuers.find((i) => i.issuer === issuer) ?? { issuer };
    if (!issuers.includes(entry)) issuers.push(entry);
    if (env.MCP_OAUTH_JWKS_URI) entry.jwksUri = env.MCP_OAUTH_JWKS_URI;
    if (env.MCP_OAUTH_AUDIENCE)
      entry.audiences = env.MCP_OAUTH_AUDIENCE.split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    oauth.issuers = issuers;
  }
  const devKeys = env.MCP_API_KEYS;
  if (devKeys !== undefined && devKeys.trim() !== '') {
    const apiKeys = section(raw, 'apiKeys');
    const inline = Array.isArray(apiKeys.keys) ? (apiKeys.keys as unknown[]) : [];
    apiKeys.keys = [...inline, ...hashDevKeys(devKeys, source)];
  }
  // A Redis URL often carries a password: the Helm chart hands it over from a Secret.
  if (env.MCP_REDIS_URL) {
    const redis = section(section(raw, 'rateLimit'), 'redis');
    redis.url = env.MCP_REDIS_URL;
  }
  const rps = envNumber(env, 'MCP_RATE_LIMIT_RPS', source);
  const burst = envNumber(env, 'MCP_RATE_LIMIT_BURST', source);
  if (rps !== undefined || burst !== undefined) {
    const perClient = section(section(raw, 'rateLimit'), 'perClient');
    if (rps !== undefined) perClient.rps = rps;
    if (burst !== undefined) perClient.burst = Math.floor(burst);
    else if (rps !== undefined && perClient.burst === undefined) perClient.burst = Math.max(1, Math.ceil(rps));
  }
  return raw;
}

/**
 * MCP_API_KEYS: a JSON map plaintext key → {name, userId, role, permissions}, for
 * development. Each key is hashed here and only its hash goes on; its id is "env-" + the first
 * 12 hex digits of the hash, so logs can name it without revealing it. Errors never echo a key.
 */
function hashDevKeys(json: string, source: string): Record<string, unknown>[] {
  let map: unknown;
  try {
    map = JSON.parse(json);
  } catch {
    throw new ConfigError(source, [
      'MCP_API_KEYS: not valid JSON; expected {"<key>": {"name": …, "userId": …, "role": …, "permissions": […]}}',
    ]);
  }
  if (map === null || typeof map !== 'object' || Array.isArray(map)) {
    throw new ConfigError(source, [
      'MCP_API_KEYS: expected a JSON object mapping each key to its {name, userId, role, permissions}',
    ]);
  }
  const out: Record<string, unknown>[] = [];
  let n = 0;
  for (const [key, value] of Object.entries(map as Record<string, unknown>)) {
    n++;
    if (key.length < 8)
      throw new ConfigError(source, [
        `MCP_API_KEYS: entry ${n} (${JSON.stringify((value as { name?: unknown })?.name ?? '?')}): a key must be at least 8 characters`,
      ]);
    const info = value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
    const sha256 = hashApiKey(key);
    const entry: Record<string, unknown> = { id: `env-${sha256.slice(0, 12)}`, sha256 };
    for (const field of ['name', 'userId', 'role', 'permissions', 'expiresAt', 'disabled'] as const) {
      if (info[field] !== undefined) entry[field] = info[field];
    }
    out.push(entry);
  }
  return out;
}

function resolvePaths(cfg: Config, baseDir: string): Config {
  const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : resolve(baseDir, p));
  if (cfg.apiKeys.file !== undefined) cfg.apiKeys.file = abs(cfg.apiKeys.file);
  if (cfg.pins !== undefined) cfg.pins.file = abs(cfg.pins.file)!;
  if (cfg.stores.postgres?.passwordFile !== undefined)
    cfg.stores.postgres.passwordFile = abs(cfg.stores.postgres.passwordFile);
  if (cfg.policy) {
    cfg.policy.bundle = abs(cfg.policy.bundle);
    cfg.policy.rego = abs(cfg.policy.rego);
  }
  for (const svc of Object.values(cfg.services)) {
    if (svc.tls?.ca_cert !== undefined) svc.tls.ca_cert = abs(svc.tls.ca_cert);
    const bearer = svc.credentials?.bearer;
    if (bearer?.token_path !== undefined) bearer.token_path = abs(bearer.token_path);
    const client = svc.credentials?.client_tls;
    if (client) {
      client.cert = abs(client.cert)!;
      client.private_key = abs(client.private_key)!;
    }
  }
  if (cfg.tls) {
    cfg.tls.certFile = abs(cfg.tls.certFile)!;
    cfg.tls.keyFile = abs(cfg.tls.keyFile)!;
    cfg.tls.clientCaFile = abs(cfg.tls.clientCaFile);
  }
  if (cfg.approvals) {
    const a = cfg.approvals;
    a.receiptKeyFile = abs(a.receiptKeyFile)!;
    a.sessionKeyFile = abs(a.sessionKeyFile);
    a.oidc.clientSecretFile = abs(a.oidc.clientSecretFile);
  }
  for (const e of cfg.endpoints) {
    const u = e.upstream;
    if (u === undefined) continue;
    if (u.mode === 'static') {
      u.valueFile = abs(u.valueFile)!;
      continue;
    }
    if (u.mode === 'userConnections') {
      u.client.secretFile = abs(u.client.secretFile)!;
      u.encryptionKeyFile = abs(u.encryptionKeyFile)!;
      continue;
    }
    u.client.secretFile = abs(u.client.secretFile);
    u.client.privateKeyFile = abs(u.client.privateKeyFile);
    if (u.mode === 'tokenExchange') u.actorTokenFile = abs(u.actorTokenFile);
  }
  return cfg;
}
