// ext_authz's gRPC Check (envoy.service.auth.v3.Authorization/Check), on the bytes path of
// whichever gRPC server serves the port: the CheckRequest's bytes through the pipeline, the
// CheckResponse's bytes back. The call's own metadata carries Envoy's ext_authz client span
// (traceparent).
import { randomUUID } from 'node:crypto';
import { internalErrorDeny } from '../contracts/outcome.js';
import type { BytesCall, BytesHandler } from '../grpc/server.js';
import { runCheck, type CallHeader } from '../pipeline/pipeline.js';
import type { Runtime } from '../pipeline/runtime.js';
import { checkResponseBytes, loadCheckCodec, readCheckRequest } from './check-codec.js';

export const CHECK_PATH = '/envoy.service.auth.v3.Authorization/Check';

/**
 * Room in a CheckRequest for everything but the body: Envoy caps request headers at 8 MiB
 * (max_request_headers_kb), twice that covers the attributes and metadata around them.
 */
export const CHECK_REQUEST_OVERHEAD_BYTES = 16 * 1024 * 1024;

/**
 * The largest CheckRequest accepted: any body up to limits.maxBodyBytes with the largest
 * headers Envoy sends, and bodies up to 16 MiB above the limit, which are answered with the
 * 413 deny. Larger messages fail as gRPC RESOURCE_EXHAUSTED (docs/envoy.md "Body size").
 */
export function maxCheckRequestBytes(limits: { maxBodyBytes: number }): number {
  return limits.maxBodyBytes + CHECK_REQUEST_OVERHEAD_BYTES;
}

const callHeader: CallHeader<BytesCall> = (call, name) => call.header(name);

/** The Check handler: decoder and encoder loaded now, not on the first call. */
export function checkHandler(runtime: Runtime): BytesHandler {
  loadCheckCodec();
  return (message, call) => void answerCheck(runtime, message, call);
}

async function answerCheck(runtime: Runtime, message: Buffer, call: BytesCall): Promise<void> {
  let bytes: Uint8Array;
  try {
    const trace = await runCheck(runtime, readCheckRequest, message, call, callHeader);
    bytes = checkResponseBytes(trace.outcome, trace.decisionId);
  } catch {
    // runCheck never rejects; this is the last line of defence and still a deny.
    bytes = checkResponseBytes(internalErrorDeny(randomUUID()));
  }
  call.reply(bytes);
}
