// Builds the CheckRequest Envoy would send for one HTTP request, for `mcp-authz check`.
import type { WireCheckRequest } from '../envoy/to-request.js';

export interface SampleRequest {
  method: string;
  path: string;
  host?: string;
  headers?: [string, string][];
  body?: string;
  sourceAddress?: string;
  /** The mTLS peer Envoy verified: its SPIFFE ID (source.principal) and certificate (PEM). */
  peerPrincipal?: string;
  peerCertificatePem?: string;
}

export function sampleToWire(s: SampleRequest): WireCheckRequest {
  const host = s.host ?? 'localhost';
  const headers: Record<string, string> = {
    ':authority': host,
    ':method': s.method.toUpperCase(),
    ':path': s.path,
    ':scheme': 'http',
  };
  for (const [name, value] of s.headers ?? []) {
    const k = name.toLowerCase();
    headers[k] = headers[k] !== undefined ? `${headers[k]},${value}` : value;
  }
  if (s.body !== undefined && headers['content-length'] === undefined)
    headers['content-length'] = String(Buffer.byteLength(s.body));
  return {
    attributes: {
      source: {
        address: { socket_address: { address: s.sourceAddress ?? '127.0.0.1', port_value: 50000 } },
        ...(s.peerPrincipal !== undefined ? { principal: s.peerPrincipal } : {}),
        // Envoy sends the certificate URL-encoded (include_peer_certificate).
        ...(s.peerCertificatePem !== undefined ? { certificate: encodeURIComponent(s.peerCertificatePem) } : {}),
      },
      request: {
        http: {
          id: '1',
          method: s.method.toUpperCase(),
          headers,
          path: s.path,
          host,
          scheme: 'http',
          protocol: 'HTTP/1.1',
          ...(s.body !== undefined ? { body: s.body, size: String(Buffer.byteLength(s.body)) } : {}),
        },
      },
    },
  };
}
