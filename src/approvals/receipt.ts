// Receipts: a decision that used an approval carries a JWS, signed with the service's key,
// that says which call (its digest) which approver let through, when, and under which rule.
// Anyone holding the public key (GET /approvals/keys) can check a receipt from a decision log.
import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, SignJWT, type JWK } from 'jose';

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
  /** The Check decision the approval was used in. */
  decisionId: string;
}

export const RECEIPT_TYPE = 'mcp-authz-approval-receipt+jwt';

export class ReceiptSigner {
  private constructor(
    private readonly key: KeyObject,
    private readonly alg: 'ES256' | 'EdDSA',
    readonly kid: string,
    readonly publicJwk: JWK,
    private readonly issuer: string,
  ) {}

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

  sign(c: ReceiptClaims, now: number): Promise<string> {
    return new SignJWT({
      digest: c.digest,
      approver: c.approver,
      approved_at: Math.floor(c.approvedAt / 1000),
      rule: c.rule,
      endpoint: c.endpoint,
      tool: c.tool,
      policy_revision: c.policyRevision,
      decision_id: c.decisionId,
    })
      .setProtectedHeader({ alg: this.alg, kid: this.kid, typ: RECEIPT_TYPE })
      .setIssuer(this.issuer)
      .setSubject(c.principal)
      .setJti(c.approvalId)
      .setIssuedAt(Math.floor(now / 1000))
      .sign(this.key);
  }

  jwks(): { keys: JWK[] } {
    return { keys: [this.publicJwk] };
  }
}
