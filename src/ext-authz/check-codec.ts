// The Check call's bytes, for the service's own gRPC server: CheckRequest bytes → the
// request model (the official protos), and an outcome → CheckResponse bytes (the byte-exact encoder).
// Decoding uses protobufjs without proto-loader's toObject copy of the whole message:
// to-request.ts reads the few fields it needs off the decoded message, and the attributes'
// plain form (for policies that read opa-envoy-plugin's input) is built only when asked for;
// test/check-codec.test.ts checks that both decoders give the same request model.
import type protobuf from 'protobufjs';
import type { Outcome } from '../contracts/outcome.js';
import { RequestRejected } from '../contracts/request-rejected.js';
import type { Request } from '../contracts/request.js';
import { encodeCheckResponse } from './encode-answer.js';
import { authRoot } from '../envoy/proto-root.js';
import { toRequest, type RequestLimits, type WireCheckRequest } from '../envoy/to-request.js';

let types: { request: protobuf.Type } | undefined;

function checkTypes() {
  types ??= { request: authRoot().lookupType('envoy.service.auth.v3.CheckRequest') };
  return types;
}

/** Loads the protos now rather than on the first Check. */
export function loadCheckCodec(): void {
  checkTypes();
}

/** Throws (protobufjs's error) on bytes that are not a CheckRequest. */
export function decodeCheckRequest(bytes: Uint8Array): WireCheckRequest {
  return checkTypes().request.decode(bytes) as unknown as WireCheckRequest;
}

/** The pipeline's decoder for CheckRequest bytes: bytes that do not decode are a deny like any unreadable request. */
export function readCheckRequest(bytes: Uint8Array, limits: RequestLimits): Request {
  let wire: WireCheckRequest;
  try {
    wire = decodeCheckRequest(bytes);
  } catch (err) {
    throw new RequestRejected(
      'invalid_check_request',
      `The CheckRequest could not be decoded (${(err as Error).message}); mcp-authz reads envoy.service.auth.v3.CheckRequest.`,
    );
  }
  return toRequest(wire, limits);
}

/** The CheckResponse for an outcome, with the decision id in its dynamic metadata (the byte-exact encoder). */
export function checkResponseBytes(o: Outcome, decisionId?: string): Uint8Array {
  return encodeCheckResponse(o, decisionId);
}
