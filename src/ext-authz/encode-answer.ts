// Outcome → CheckResponse bytes, for the Check path: sizes first, then one buffer written
// field by field — proto-loader's path copies every nested message into a protobufjs object
// first and allocates as it writes. Field numbers are the official protos'
// (envoy/service/auth/v3/external_auth.proto, config/core/v3/base.proto,
// type/v3/http_status.proto, google/rpc/status.proto); test/encode-response.test.ts checks
// every shape, and random ones, byte for byte against proto-loader's encoding of
// toCheckResponse's object — the dynamic metadata (a google.protobuf.Struct holding the
// decision id, and whatever the policy adds) included.
import { responseBody, responseContentType, type HeaderToSet, type Outcome } from '../contracts/outcome.js';
import { DECISION_ID_KEY, decisionMetadata } from './answer.js';

// A tag is (field number << 3) | wire type, one byte for the field numbers used here:
// wire type 0 = varint, 2 = length-delimited.
const LEN = 2;
const VARINT = 0;
const tag = (field: number, wire: number) => (field << 3) | wire;

function varintSize(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

/** Size of a length-delimited field holding `n` bytes. */
const field = (n: number) => 1 + varintSize(n) + n;

class Out {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  varint(n: number): void {
    while (n > 0x7f) {
      this.buf[this.pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    this.buf[this.pos++] = n;
  }
  /** A length-delimited field's tag and length; its content follows. */
  open(fieldNo: number, size: number): void {
    this.buf[this.pos++] = tag(fieldNo, LEN);
    this.varint(size);
  }
  string(fieldNo: number, s: string, bytes: number): void {
    this.open(fieldNo, bytes);
    this.pos += this.buf.write(s, this.pos, bytes, 'utf8');
  }
}

// config.core.v3.HeaderValueOption { HeaderValue header = 1 { string key = 1; string value = 2; }; google.protobuf.BoolValue append = 2 { bool value = 1; } }
const BOOL_VALUE_SIZE = 2;

interface SizedHeader {
  h: HeaderToSet;
  key: number;
  value: number;
  /** HeaderValue's size */
  hv: number;
  /** HeaderValueOption's size */
  size: number;
}

function sizeHeader(h: HeaderToSet): SizedHeader {
  const key = Buffer.byteLength(h.name);
  const value = Buffer.byteLength(h.value);
  const hv = field(key) + field(value);
  return { h, key, value, hv, size: field(hv) + field(BOOL_VALUE_SIZE) };
}

function writeHeader(out: Out, fieldNo: number, s: SizedHeader): void {
  out.open(fieldNo, s.size);
  out.open(1, s.hv);
  out.string(1, s.h.name, s.key);
  out.string(2, s.h.value, s.value);
  out.open(2, BOOL_VALUE_SIZE);
  out.buf[out.pos++] = tag(1, VARINT);
  out.buf[out.pos++] = s.h.append ? 1 : 0;
}

const sumSizes = (xs: { size: number }[], fieldSize = field) => xs.reduce((n, x) => n + fieldSize(x.size), 0);

// CheckResponse.dynamic_metadata = 4: google.protobuf.Struct { map<string, Value> fields = 1; }
// A map entry is a message { string key = 1; Value value = 2; }.
// Value { oneof kind { NullValue null_value = 1; double number_value = 2; string string_value = 3;
//   bool bool_value = 4; Struct struct_value = 5; ListValue list_value = 6; } }
// ListValue { repeated Value values = 1; }
const DYNAMIC_METADATA = 4;
const FIXED64 = 1;
const DECISION_ID_KEY_BYTES = Buffer.byteLength(DECISION_ID_KEY);

/** A google.protobuf.Value as protobufjs writes the object toStruct makes of `v`. */
function valueBytes(v: unknown): Buffer {
  if (v === null || v === undefined) return Buffer.from([tag(1, VARINT), 0]);
  if (typeof v === 'number') {
    const b = Buffer.allocUnsafe(9);
    b[0] = tag(2, FIXED64);
    b.writeDoubleLE(v, 1);
    return b;
  }
  if (typeof v === 'boolean') return Buffer.from([tag(4, VARINT), v ? 1 : 0]);
  if (Array.isArray(v)) return lengthDelimited(6, Buffer.concat(v.map((x) => lengthDelimited(1, valueBytes(x)))));
  if (typeof v === 'object') return lengthDelimited(5, structBytes(v as Record<string, unknown>));
  return lengthDelimited(3, Buffer.from(typeof v === 'string' ? v : String(v), 'utf8'));
}

function structBytes(obj: Record<string, unknown>): Buffer {
  const entries: Buffer[] = [];
  for (const k of Object.keys(obj)) {
    // proto-loader's object path cannot hold a "__proto__" key (assigning it sets the prototype): Envoy never gets one.
    if (k === '__proto__') continue;
    entries.push(
      lengthDelimited(
        1,
        Buffer.concat([lengthDelimited(1, Buffer.from(k, 'utf8')), lengthDelimited(2, valueBytes(obj[k]))]),
      ),
    );
  }
  return Buffer.concat(entries);
}

function lengthDelimited(fieldNo: number, content: Buffer): Buffer {
  const head = new Out(Buffer.allocUnsafe(1 + varintSize(content.length)));
  head.open(fieldNo, content.length);
  return Buffer.concat([head.buf, content]);
}

/** Size of the Struct { decision_id: "<id>" } for an id of `idBytes` bytes. */
function decisionIdStructSize(idBytes: number): number {
  return field(field(DECISION_ID_KEY_BYTES) + field(field(idBytes)));
}

/**
 * Writes dynamic_metadata: the policy's Struct, encoded already, or — the common case,
 * without allocating — the Struct holding only the decision id.
 */
function writeMetadata(
  out: Out,
  policyStruct: Buffer | undefined,
  decisionId: string | undefined,
  idBytes: number,
): void {
  if (policyStruct !== undefined) {
    out.open(DYNAMIC_METADATA, policyStruct.length);
    out.pos += policyStruct.copy(out.buf, out.pos);
    return;
  }
  if (decisionId === undefined) return;
  const value = field(idBytes);
  const entry = field(DECISION_ID_KEY_BYTES) + field(value);
  out.open(DYNAMIC_METADATA, field(entry));
  out.open(1, entry);
  out.string(1, DECISION_ID_KEY, DECISION_ID_KEY_BYTES);
  out.open(2, value);
  out.string(3, decisionId, idBytes);
}

/**
 * The CheckResponse for an outcome, with the decision id (when given) in its dynamic
 * metadata under `decision_id`, beside any the policy set.
 */
export function encodeCheckResponse(o: Outcome, decisionId?: string, now?: Date): Buffer {
  const policyMetadata = o.kind === 'answer' ? undefined : o.dynamicMetadata;
  const policyStruct = policyMetadata !== undefined ? structBytes(decisionMetadata(o, decisionId)!) : undefined;
  const idBytes = decisionId !== undefined ? Buffer.byteLength(decisionId) : 0;
  const metadataSize =
    policyStruct !== undefined
      ? field(policyStruct.length)
      : decisionId !== undefined
        ? field(decisionIdStructSize(idBytes))
        : 0;
  if (o.allow) {
    // status = 1: google.rpc.Status { int32 code = 1 } with code 0: an empty message.
    // ok_response = 3: OkHttpResponse { headers = 2; headers_to_remove = 5; response_headers_to_add = 6; query_parameters_to_remove = 8; }
    const headers = o.headers.map(sizeHeader);
    const responseHeaders = o.responseHeaders.map(sizeHeader);
    const removed = o.headersToRemove.map((s) => ({ s, size: Buffer.byteLength(s) }));
    const queryRemoved = o.queryParamsToRemove.map((s) => ({ s, size: Buffer.byteLength(s) }));
    const ok = sumSizes(headers) + sumSizes(removed) + sumSizes(responseHeaders) + sumSizes(queryRemoved);
    const statusSize = 2; // code 0 is written: one tag, one byte
    const out = new Out(Buffer.allocUnsafe(field(statusSize) + field(ok) + metadataSize));
    out.open(1, statusSize);
    out.buf[out.pos++] = tag(1, VARINT);
    out.buf[out.pos++] = 0;
    out.open(3, ok);
    for (const h of headers) writeHeader(out, 2, h);
    for (const r of removed) out.string(5, r.s, r.size);
    for (const h of responseHeaders) writeHeader(out, 6, h);
    for (const r of queryRemoved) out.string(8, r.s, r.size);
    writeMetadata(out, policyStruct, decisionId, idBytes);
    return out.buf;
  }
  // A deny, or a direct answer (sent by Envoy as a denied response whose HTTP status is 200).
  // status = 1: google.rpc.Status { int32 code = 1; string message = 2; }
  // denied_response = 2: DeniedHttpResponse { type.v3.HttpStatus status = 1 { code = 1 }; headers = 2; string body = 3; }
  const code = o.grpc;
  const message = Buffer.byteLength(o.code);
  const statusSize = 1 + varintSize(code) + field(message);
  const headers = [
    sizeHeader({ name: 'content-type', value: responseContentType(o), append: false }),
    ...o.headers.map(sizeHeader),
  ];
  const body = responseBody(o, now);
  const bodySize = Buffer.byteLength(body);
  const httpStatus = 1 + varintSize(o.status);
  const denied = field(httpStatus) + sumSizes(headers) + field(bodySize);
  const out = new Out(Buffer.allocUnsafe(field(statusSize) + field(denied) + metadataSize));
  out.open(1, statusSize);
  out.buf[out.pos++] = tag(1, VARINT);
  out.varint(code);
  out.string(2, o.code, message);
  out.open(2, denied);
  out.open(1, httpStatus);
  out.buf[out.pos++] = tag(1, VARINT);
  out.varint(o.status);
  for (const h of headers) writeHeader(out, 2, h);
  out.string(3, body, bodySize);
  writeMetadata(out, policyStruct, decisionId, idBytes);
  return out.buf;
}
