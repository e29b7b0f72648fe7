// The TLS certificate, key and client CA the ports serve with, from mounted files: read at
// start (files that do not make a usable pair stop start-up), then reloaded as one set when
// any of them changes (src/config/watched-file.ts: folder watch, kubelet's "..data" swap,
// poll). A new set replaces the one in force only when the certificate parses, matches the
// key, has not expired, and the CA bundle holds certificates; otherwise the last good set
// keeps serving, the failure is logged and counted. Listeners (the servers) are told of each
// new set; connections made before keep the set they were made with.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContextOptions, type Server as TlsServer, type TlsOptions } from 'node:tls';
import type { Config, TlsConfig } from '../config/schema.js';
import { readSource, WatchedFile, type ReloadResult, type SourceSnapshot } from '../config/watched-file.js';
import type { Logger } from '../log/logger.js';
import type { ServiceEvents, TlsListener } from '../metrics/hooks.js';

/** One usable set: what node:tls and grpc-js take, and what the logs and metrics say about it. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  /** The client CA bundle (mTLS); undefined without tls.clientCaFile. */
  ca: Buffer | undefined;
  /** The serving certificate's subject, SANs, expiry and SHA-256 fingerprint, for the log. */
  subject: string;
  subjectAltName: string | undefined;
  notAfter: Date;
  fingerprint256: string;
}

export class TlsFilesError extends Error {
  readonly code = 'ERR_TLS_FILES';
}

/** Whether the config serves TLS on any port (so the TLS files are loaded and watched). */
export function servesTls(config: Config): boolean {
  const t = config.tls;
  return (
    t !== undefined &&
    (t.grpc !== 'off' || t.http !== 'off' || (config.listen.extAuthzHttp !== undefined && t.extAuthzHttp !== 'off'))
  );
}

/** PEM certificate blocks in a file. */
const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Checks a set of files and makes the material; throws a TlsFilesError saying what is wrong. */
export function tlsMaterial(
  config: Pick<TlsConfig, 'certFile' | 'keyFile' | 'clientCaFile'>,
  cert: Buffer,
  key: Buffer,
  ca: Buffer | undefined,
  now = Date.now(),
): TlsMaterial {
  const blocks = cert.toString('latin1').match(PEM_CERT) ?? [];
  if (blocks.length === 0)
    throw new TlsFilesError(`${config.certFile}: no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(blocks[0]!);
  } catch (err) {
    throw new TlsFilesError(`${config.certFile}: the first certificate cannot be read: ${(err as Error).message}`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new TlsFilesError(`${config.keyFile}: not a readable unencrypted PEM private key: ${(err as Error).message}`);
  }
  if (!leaf.checkPrivateKey(privateKey))
    throw new TlsFilesError(
      `${config.keyFile} is not the private key of the certificate in ${config.certFile} (replace both files together)`,
    );
  const notAfter = new Date(leaf.validTo);
  if (notAfter.getTime() <= now)
    throw new TlsFilesError(`${config.certFile}: the certificate expired at ${notAfter.toISOString()}`);
  if (ca !== undefined) {
    const cas = ca.toString('latin1').match(PEM_CERT) ?? [];
    if (cas.length === 0)
      throw new TlsFilesError(
        `${config.clientCaFile}: no PEM certificate: the client CA bundle must hold the CA certificates that sign client certificates`,
      );
    for (const [i, block] of cas.entries()) {
      try {
        new X509Certificate(block);
      } catch (err) {
        throw new TlsFilesError(
          `${config.clientCaFile}: certificate ${i + 1} cannot be read: ${(err as Error).message}`,
        );
      }
    }
  }
  try {
    // What the servers will do with it: the whole chain and the CA, as OpenSSL reads them.
    createSecureContext({ cert, key, ...(ca ? { ca } : {}) });
  } catch (err) {
    throw new TlsFilesError(
      `${config.certFile} and ${config.keyFile}: OpenSSL refuses them: ${(err as Error).message}`,
    );
  }
  return {
    cert,
    key,
    ca,
    subject: leaf.subject,
    subjectAltName: leaf.subjectAltName,
    notAfter,
    fingerprint256: leaf.fingerprint256,
  };
}

/** The secure context options a node:tls server takes for the material. */
export function secureContextOptions(m: TlsMaterial): SecureContextOptions {
  return { cert: m.cert, key: m.key, ...(m.ca ? { ca: m.ca } : {}) };
}

export interface TlsFilesOptions {
  config: TlsConfig;
  logger: Logger;
  events: ServiceEvents;
  /** Watch the files for changes (serving); off for `serve --check-config`. */
  watch: boolean;
}

export class TlsFiles {
  private readonly file: WatchedFile<TlsMaterial>;
  private readonly listeners = new Set<(m: TlsMaterial) => void>();
  private readonly paths: string[];

  constructor(private readonly opts: TlsFilesOptions) {
    const { config } = opts;
    this.paths = [config.certFile, config.keyFile, ...(config.clientCaFile !== undefined ? [config.clientCaFile] : [])];
    let source: SourceSnapshot;
    try {
      source = readSource(this.paths);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new TlsFilesError(
        `cannot read the TLS files (tls.certFile, tls.keyFile, tls.clientCaFile): ${e.path ?? ''} ${e.code ?? e.message}`.replace(
          /\s+/g,
          ' ',
        ),
      );
    }
    const build = (s: SourceSnapshot) => tlsMaterial(config, s.files![0]!, s.files![1]!, s.files![2]);
    const initial = build(source);
    this.file = new WatchedFile({
      path: this.paths,
      build,
      pollIntervalMs: config.pollIntervalMs,
      log: opts.logger,
      what: 'the TLS files',
      initial: { value: initial, digest: source.digest },
    });
    this.file.onReload((r) => this.reloaded(r));
    if (opts.watch) this.file.start();
    opts.events.tlsReload?.('success', initial.notAfter.getTime() / 1000);
    opts.logger.info(describe(initial, config), 'TLS certificate loaded');
  }

  /** The set in force: the last one that loaded. */
  get current(): TlsMaterial {
    return this.file.current!;
  }

  /** Told of each new set (not of a failed reload: the set in force stays). */
  onChange(listener: (m: TlsMaterial) => void): void {
    this.listeners.add(listener);
  }

  /** Re-reads the files now; resolves when the new set is in force, or refused. */
  async reload(): Promise<void> {
    await this.file.reload();
  }

  async close(): Promise<void> {
    this.listeners.clear();
    await this.file.close();
  }

  private reloaded(r: ReloadResult<TlsMaterial>): void {
    const { logger, events, config } = this.opts;
    if (r.ok) {
      logger.info(describe(r.value, config), 'TLS certificate reloaded: new connections use it');
      events.tlsReload?.('success', r.value.notAfter.getTime() / 1000);
      for (const l of this.listeners) l(r.value);
      return;
    }
    const err = r.error as NodeJS.ErrnoException;
    const problem = r.unreadable
      ? `cannot read the TLS files: ${err.path ?? ''} ${err.code ?? err.message}`.replace(/\s+/g, ' ')
      : err.message;
    logger.warn(
      {
        tls_files: this.paths,
        problem,
        ...(r.kept ? { serving: r.kept.fingerprint256, not_after: r.kept.notAfter.toISOString() } : {}),
      },
      'TLS reload failed; the previous certificate keeps serving',
    );
    events.tlsReload?.('failure', undefined);
  }
}

function describe(m: TlsMaterial, config: TlsConfig): Record<string, unknown> {
  return {
    tls_cert: config.certFile,
    subject: m.subject.replace(/\n/g, ', '),
    subject_alt_name: m.subjectAltName,
    not_after: m.notAfter.toISOString(),
    fingerprint256: m.fingerprint256,
    client_ca: config.clientCaFile ?? null,
    ports: { grpc: config.grpc, extAuthzHttp: config.extAuthzHttp, http: config.http },
  };
}

/** A port's TLS: the server options it starts with, and the server kept up to date. */
export interface PortTls {
  /** Options for node:tls / node:https / node:http2 createSecureServer. */
  serverOptions(): TlsOptions;
  /** New sets go to the server (existing connections keep theirs); failed handshakes are counted. */
  attach(server: TlsServer, listener: TlsListener): void;
}

/** The TLS of a port in `mode` (tls: a certificate; mtls: and a client certificate the client CA signed). */
export function portTls(files: TlsFiles, mode: 'tls' | 'mtls', events: ServiceEvents): PortTls {
  const mtls = mode === 'mtls';
  return {
    serverOptions: () => ({ ...secureContextOptions(files.current), requestCert: mtls, rejectUnauthorized: mtls }),
    attach(server, listener) {
      files.onChange((m) => server.setSecureContext(secureContextOptions(m)));
      server.on('tlsClientError', () => events.tlsHandshakeFailure?.(listener));
    },
  };
}
