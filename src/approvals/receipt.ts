// Receipts: a decision that used an approval carries a JWS, signed with the service's key,
// that says which call (its digest) which approver let through, when, and under which rule.
// Anyone holding the public key (GET /approvals/keys) can check a receipt from a decision log.
import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';

export interface ReceiptClaims {
  approvalId: string;
  digest: string;
  approver: string;
  /** Epoch ms the approver decided. */
  approvedAt: number;
  rule: string;
  principal: string;
  endpoint: string;
  tool: string;
  policyRevision: string;
  /** The Check decision the approval was used in; absent from a receipt signed when the approver decided. */
  decisionId?: string;
}

export const RECEIPT_TYPE = 'mcp-authz-approval-receipt+jwt';

export class ReceiptSigner {
  /** The protected header, encoded once. */
  private readonly header: string;

  private constructor(
    private readonly key: KeyObject,
    private readonly alg: 'ES256' | 'EdDSA',
    readonly kid: string,
    readonly publicJwk: JWK,
    private readonly issuer: string,
  ) {
    this.header = Buffer.from(JSON.stringify({ alg, kid, typ: RECEIPT_TYPE })).toString('base64url');
  }

  /** From a PEM private key (EC P-256 or Ed25519); throws with what is wrong. */
  static async fromPem(pem: string, issuer: string): Promise<ReceiptSigner> {
    const key = createPrivateKey(pem);
    const type = key.asymmetricKeyType;
    let alg: 'ES256' | 'EdDSA';
    if (type === 'ed25519') alg = 'EdDSA';
    else if (type === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1') alg = 'ES256';
    else throw new Error(`the receipt key must be EC P-256 or Ed25519, not ${type}`);
    const jwk = await exportJWK(createPublicKey(key));
    const kid = await calculateJwkThumbprint(jwk);
    return new ReceiptSigner(key, alg, kid, { ...jwk, kid, alg, use: 'sig' }, issuer);
  }

  /**
   * The compact JWS (RFC 7515) of a receipt, signed here with node:crypto in the calling
   * thread: an Ed25519 signature costs tens of µs this way, several times less than through
   * WebCrypto's thread pool (bench/approvals.ts). ES256 signatures are IEEE P1363 (r‖s), as JWS
   * requires.
   */
  sign(c: ReceiptClaims, now: number): string {
    const payload = {
      digest: c.digest,
      approver: c.approver,
      approved_at: Math.floor(c.approvedAt / 1000),
      rule: c.rule,
      endpoint: c.endpoint,
      tool: c.tool,
      policy_revision: c.policyRevision,
      ...(c.decisionId === undefined ? {} : { decision_id: c.decisionId }),
      iss: this.issuer,
      sub: c.principal,
      jti: c.approvalId,
      iat: Math.floor(now / 1000),
    };
    const input = `${this.header}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    const signature =
      this.alg === 'EdDSA'
        ? sign(null, Buffer.from(input), this.key)
        : sign('sha256', Buffer.from(input), { key: this.key, dsaEncoding: 'ieee-p1363' });
    return `${input}.${signature.toString('base64url')}`;
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] };
  }
}
