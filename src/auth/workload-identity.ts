// Workload identity from the mTLS peer (docs/workload-identity.md): the SPIFFE ID Envoy puts in
// the CheckRequest's attributes.source.principal when it terminated the client's TLS — in
// Istio with STRICT mTLS, the calling workload's spiffe://<trust domain>/ns/<ns>/sa/<sa>.
// Only the transport's attributes are read, never a request header: a header is the client's
// word, the peer is what Envoy verified. When Envoy also sends the peer certificate
// (include_peer_certificate), its one URI SAN must be that same ID.
import { X509Certificate } from 'node:crypto';
import type { AuthFailureDetail } from '../contracts/codes.js';
import type { Principal } from '../contracts/principal.js';
import type { Request } from '../contracts/request.js';
import { parseSpiffeId } from '../contracts/spiffe-id.js';

export type WorkloadResult =
  | { kind: 'none' }
  | { kind: 'ok'; principal: Principal }
  | { kind: 'bad'; detail: AuthFailureDetail; why: string };

const NONE: WorkloadResult = Object.freeze({ kind: 'none' });
/** Peers seen recently (one entry per workload, or per workload and certificate). */
const CACHE_SIZE = 4096;

export class WorkloadIdentities {
  private readonly cache = new Map<string, WorkloadResult>();

  /** The workload the request's mTLS peer proves, or why it proves none. */
  identify(request: Pick<Request, 'peerPrincipal' | 'peerCertificate'>): WorkloadResult {
    const principal = request.peerPrincipal ?? '';
    const certificate = request.peerCertificate ?? '';
    if (principal === '' && certificate === '') return NONE;
    const key = certificate === '' ? principal : `${principal}\n${certificate}`;
    let result = this.cache.get(key);
    if (result === undefined) {
      result = identify(principal, certificate);
      if (this.cache.size >= CACHE_SIZE) this.cache.clear();
      this.cache.set(key, result);
    }
    return result;
  }
}

function identify(peerPrincipal: string, certificate: string): WorkloadResult {
  let id = peerPrincipal;
  if (certificate !== '') {
    const fromCert = certificateUri(certificate);
    if (typeof fromCert !== 'string') return fromCert;
    if (id === '') id = fromCert;
    else if (fromCert !== id)
      return bad('peer_certificate_invalid', "the peer certificate's URI SAN is not the peer principal Envoy reported");
  }
  const spiffe = parseSpiffeId(id);
  if (spiffe === undefined) {
    return bad(
      'peer_not_spiffe',
      "the mTLS peer's identity is not the SPIFFE ID of a workload (spiffe://<trust domain>/<path>)",
    );
  }
  const principal: Principal = Object.freeze({
    authenticated: true,
    method: 'mtls',
    id: spiffe.id,
    roles: [],
    permissions: [],
    scopes: [],
    spiffeId: spiffe.id,
    trustDomain: spiffe.trustDomain,
  }) as Principal;
  return { kind: 'ok', principal };
}

/** The one URI SAN of a URL-encoded PEM certificate (as Envoy sends it), or why there is none. */
function certificateUri(encoded: string): string | WorkloadResult {
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(decodeURIComponent(encoded));
  } catch {
    return bad('peer_certificate_invalid', 'the peer certificate cannot be read (expected URL-encoded PEM)');
  }
  // Node lists SANs as "URI:…, DNS:…", quoting any value with a "," or quote; a SPIFFE ID has neither.
  const uris = (cert.subjectAltName ?? '').split(', ').filter((san) => san.startsWith('URI:'));
  if (uris.length !== 1)
    return bad(
      'peer_certificate_invalid',
      `the peer certificate carries ${uris.length} URI SANs; an X.509 SVID carries exactly one`,
    );
  return uris[0]!.slice('URI:'.length);
}

function bad(detail: AuthFailureDetail, why: string): WorkloadResult {
  return { kind: 'bad', detail, why };
}
