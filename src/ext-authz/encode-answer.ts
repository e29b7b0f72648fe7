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

// A Struct is encoded in two passes with no intermediate buffers: structSize walks the object
// once and records, in the order the writer needs them, each key's and string's byte length
// and each nested message's size; writeStruct walks it again and writes straight into the
// answer's buffer. Values are written as protobufjs writes the object toStruct makes of them.

/** The content size of the Struct `obj` (what dynamic_metadata's length says); `sizes` gets what writeStruct reads. */
function structSize(obj: Record<string, unknown>, sizes: number[]): number {
  let total = 0;
  for (const k of Object.keys(obj)) {
    // proto-loader's object path cannot hold a "__proto__" key (assigning it sets the prototype): Envoy never gets one.
    if (k === '__proto__') continue;
    const key = Buffer.byteLength(k, 'utf8');
    sizes.push(key);
    const at = sizes.length;
    sizes.push(0);
    const value = valueSize(obj[k], sizes);
    sizes[at] = value;
    total += field(field(key) + field(value));
  }
  return total;
}

/** The content size of a google.protobuf.Value holding `v`. */
function valueSize(v: unknown, sizes: number[]): number {
  if (v === null || v === undefined || typeof v === 'boolean') return 2;
  if (typeof v === 'number') return 9;
  if (typeof v === 'object') {
    const encoded = Array.isArray(v) ? undefined : frozenStruct(v as Record<string, unknown>);
    if (encoded !== undefined) {
      sizes.push(encoded.length);
      return field(encoded.length);
    }
    const at = sizes.length;
    sizes.push(0);
    let content = 0;
    if (Array.isArray(v)) {
      for (const x of v) {
        const i = sizes.length;
        sizes.push(0);
        const element = valueSize(x, sizes);
        sizes[i] = element;
        content += field(element);
      }
    } else content = structSize(v as Record<string, unknown>, sizes);
    sizes[at] = content;
    return field(content);
  }
  const bytes = Buffer.byteLength(typeof v === 'string' ? v : String(v), 'utf8');
  sizes.push(bytes);
  return field(bytes);
}

/**
 * A frozen object of strings, numbers, booleans and nulls — a used approval's evidence, the
 * same object for every call its grant lets through — is encoded once and its bytes kept, by
 * identity: nothing in it can change. Any other object: undefined, encoded where it is.
 */
const frozenStructs = new WeakMap<object, Buffer>();

function frozenStruct(v: Record<string, unknown>): Buffer | undefined {
  let encoded = frozenStructs.get(v);
  if (encoded !== undefined || !Object.isFrozen(v)) return encoded;
  for (const x of Object.values(v)) if (typeof x === 'object' && x !== null) return undefined;
  const sizes: number[] = [];
  const out = new Out(Buffer.allocUnsafe(structSize(v, sizes)));
  writeStruct(out, v, { list: sizes, i: 0 });
  encoded = out.buf;
  frozenStructs.set(v, encoded);
  return encoded;
}

/** Cursor over the sizes structSize recorded. */
interface Sizes {
  list: number[];
  i: number;
}

function writeStruct(out: Out, obj: Record<string, unknown>, sizes: Sizes): void {
  for (const k of Object.keys(obj)) {
    if (k === '__proto__') continue;
    const key = sizes.list[sizes.i++]!;
    const value = sizes.list[sizes.i++]!;
    out.open(1, field(key) + field(value));
    out.string(1, k, key);
    out.open(2, value);
    writeValue(out, obj[k], sizes);
  }
}

function writeValue(out: Out, v: unknown, sizes: Sizes): void {
  if (v === null || v === undefined) {
    out.buf[out.pos++] = tag(1, VARINT);
    out.buf[out.pos++] = 0;
  } else if (typeof v === 'number') {
    out.buf[out.pos++] = tag(2, FIXED64);
    out.pos = out.buf.writeDoubleLE(v, out.pos);
  } else if (typeof v === 'boolean') {
    out.buf[out.pos++] = tag(4, VARINT);
    out.buf[out.pos++] = v ? 1 : 0;
  } else if (Array.isArray(v)) {
    out.open(6, sizes.list[sizes.i++]!);
    for (const x of v) {
      out.open(1, sizes.list[sizes.i++]!);
      writeValue(out, x, sizes);
    }
  } else if (typeof v === 'object') {
    out.open(5, sizes.list[sizes.i++]!);
    // Encoded when sized (frozenStruct): copied as it is.
    const encoded = frozenStructs.get(v);
    if (encoded !== undefined) out.pos += encoded.copy(out.buf, out.pos);
    else writeStruct(out, v as Record<string, unknown>, sizes);
  } else out.string(3, typeof v === 'string' ? v : String(v), sizes.list[sizes.i++]!);
}

/** Size of the Struct { decision_id: "<id>" } for an id of `idBytes` bytes. */
function decisionIdStructSize(idBytes: number): number {
  return field(field(DECISION_ID_KEY_BYTES) + field(field(idBytes)));
}

/** The policy's metadata (with the decision id) as a Struct, sized and ready to write. */
interface SizedStruct {
  obj: Record<string, unknown>;
  size: number;
  sizes: number[];
}

function sizeMetadata(obj: Record<string, unknown> | undefined): SizedStruct | undefined {
  if (obj === undefined) return undefined;
  const sizes: number[] = [];
  return { obj, size: structSize(obj, sizes), sizes };
}

/**
 * Writes dynamic_metadata: the policy's Struct or — the common case, with nothing to size —
 * the Struct holding only the decision id.
 */
function writeMetadata(
  out: Out,
  policyStruct: SizedStruct | undefined,
  decisionId: string | undefined,
  idBytes: number,
): void {
  if (policyStruct !== undefined) {
    out.open(DYNAMIC_METADATA, policyStruct.size);
    writeStruct(out, policyStruct.obj, { list: policyStruct.sizes, i: 0 });
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
  const policyStruct = policyMetadata !== undefined ? sizeMetadata(decisionMetadata(o, decisionId)) : undefined;
  const idBytes = decisionId !== undefined ? Buffer.byteLength(decisionId) : 0;
  const metadataSize =
    policyStruct !== undefined
      ? field(policyStruct.size)
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
