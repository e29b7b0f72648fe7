// How the service authenticates to a token endpoint as its own OAuth client:
// client_secret_basic (RFC 6749 §2.3.1) with the secret from a file, or private_key_jwt
// (RFC 7523 §2.2, OpenID Connect Core §9) with a key from a file signing a short assertion.
import { randomUUID } from 'node:crypto';
import { importPKCS8, SignJWT, type CryptoKey } from 'jose';
import type { TokenEndpointConfig } from '../config/upstream-schema.js';
import type { Logger } from '../log/logger.js';
import { SecretFile } from './secret-file.js';
import { UpstreamTokenError } from './token-endpoint.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

export class ClientAuth {
  private readonly secret: SecretFile<string> | undefined;
  private readonly key: SecretFile<CryptoKey> | undefined;
  private basic: { secret: string; header: string } | undefined;

  constructor(
    private readonly cfg: TokenEndpointConfig,
    endpoint: string,
    logger: Logger,
    onChange: () => void,
  ) {
    const client = cfg.client;
    if (client.secretFile !== undefined) {
      this.secret = new SecretFile({
        path: client.secretFile,
        what: `the client secret of endpoint ${endpoint}`,
        parse: (t) => t,
        pollIntervalMs: 5000,
        logger,
        onChange,
      });
    } else {
      this.key = new SecretFile({
        path: client.privateKeyFile!,
        what: `the client key of endpoint ${endpoint}`,
        parse: (pem) => importPKCS8(pem, client.algorithm),
        pollIntervalMs: 5000,
        logger,
        onChange,
      });
    }
  }

  load(watch: boolean): Promise<unknown> {
    return Promise.all([this.secret?.load(watch), this.key?.load(watch)]);
  }

  close(): Promise<unknown> {
    return Promise.all([this.secret?.close(), this.key?.close()]);
  }

  /** Adds the client's authentication to a token request; throws when its secret is not loaded. */
  async apply(form: URLSearchParams, headers: Record<string, string>): Promise<void> {
    const { client } = this.cfg;
    if (this.secret !== undefined) {
      const secret = this.secret.current;
      if (secret === undefined)
        throw new UpstreamTokenError(
          'upstream_secret_unavailable',
          `the client secret file ${client.secretFile} is not loaded`,
        );
      if (this.basic?.secret !== secret) {
        // RFC 6749 §2.3.1: id and secret are form-urlencoded before they are joined.
        this.basic = {
          secret,
          header: `Basic ${Buffer.from(`${formEncode(client.id)}:${formEncode(secret)}`).toString('base64')}`,
        };
      }
      headers.authorization = this.basic.header;
      return;
    }
    const key = this.key!.current;
    if (key === undefined)
      throw new UpstreamTokenError(
        'upstream_secret_unavailable',
        `the client key file ${client.privateKeyFile} is not loaded`,
      );
    const assertion = await new SignJWT({})
      .setProtectedHeader(
        client.keyId !== undefined ? { alg: client.algorithm, kid: client.keyId } : { alg: client.algorithm },
      )
      .setIssuer(client.id)
      .setSubject(client.id)
      .setAudience(client.assertionAudience ?? this.cfg.tokenEndpoint)
      .setJti(randomUUID())
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(key);
    form.set('client_id', client.id);
    form.set('client_assertion_type', JWT_BEARER);
    form.set('client_assertion', assertion);
  }
}

function formEncode(s: string): string {
  return encodeURIComponent(s).replace(/%20/g, '+');
}
