// A CheckRequest captured as JSON (the protobuf JSON mapping, "protojson", as Envoy's and Go's
// tools print it: lowerCamelCase names or the .proto names, int64 as strings, bytes as base64,
// Timestamps as RFC 3339, Structs as plain JSON, Any with "@type") → the CheckRequest's bytes,
// for `mcp-authz check --check-request`. The bytes then go through the same decoder as a Check
// from Envoy. Strict, as protojson readers are: an unknown field, a value of the wrong kind, two
// members of one oneof, or a field given twice is an error naming where it is.
import protobuf from 'protobufjs';
import { authRoot } from '../envoy/proto-root.js';

export class CheckRequestJsonError extends Error {
  constructor(
    readonly where: string,
    why: string,
  ) {
    super(`${where || 'the CheckRequest'}: ${why}`);
  }
}

/** protoc's JSON name of a field: underscores dropped, the letter after each upper-cased. */
function jsonName(name: string): string {
  return name.replace(/_+([a-z0-9])/g, (_, c: string) => c.toUpperCase()).replace(/_/g, '');
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const isObject = (v: Json | undefined): v is { [k: string]: Json } =>
  v !== null && typeof v === 'object' && !Array.isArray(v);

const INT32 = new Set(['int32', 'sint32', 'sfixed32']);
const UINT32 = new Set(['uint32', 'fixed32']);
const INT64 = new Set(['int64', 'sint64', 'sfixed64']);
const UINT64 = new Set(['uint64', 'fixed64']);

function integer(v: Json, where: string, min: bigint, max: bigint): bigint {
  let n: bigint;
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new CheckRequestJsonError(where, `expected an integer, got ${v}`);
    n = BigInt(v);
  } else if (typeof v === 'string' && /^-?\d+$/.test(v)) {
    n = BigInt(v);
  } else {
    throw new CheckRequestJsonError(
      where,
      `expected an integer (a number or a decimal string), got ${JSON.stringify(v)}`,
    );
  }
  if (n < min || n > max) throw new CheckRequestJsonError(where, `${n} is out of range`);
  return n;
}

function scalar(type: string, v: Json, where: string): unknown {
  if (INT32.has(type)) return Number(integer(v, where, -(2n ** 31n), 2n ** 31n - 1n));
  if (UINT32.has(type)) return Number(integer(v, where, 0n, 2n ** 32n - 1n));
  if (INT64.has(type)) return integer(v, where, -(2n ** 63n), 2n ** 63n - 1n).toString();
  if (UINT64.has(type)) return integer(v, where, 0n, 2n ** 64n - 1n).toString();
  switch (type) {
    case 'double':
    case 'float':
      if (typeof v === 'number') return v;
      if (v === 'NaN') return NaN;
      if (v === 'Infinity') return Infinity;
      if (v === '-Infinity') return -Infinity;
      if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
      throw new CheckRequestJsonError(where, `expected a number, got ${JSON.stringify(v)}`);
    case 'bool':
      if (typeof v === 'boolean') return v;
      throw new CheckRequestJsonError(where, `expected true or false, got ${JSON.stringify(v)}`);
    case 'string':
      if (typeof v !== 'string') throw new CheckRequestJsonError(where, `expected a string, got ${JSON.stringify(v)}`);
      if (/\p{Cs}/u.test(v))
        throw new CheckRequestJsonError(where, 'the string has a lone surrogate (not valid UTF-8)');
      return v;
    case 'bytes':
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v) || v.replace(/=+$/, '').length % 4 === 1) {
        throw new CheckRequestJsonError(where, `expected base64, got ${JSON.stringify(v)}`);
      }
      return Buffer.from(v.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  }
  throw new CheckRequestJsonError(where, `unsupported field type ${type}`);
}

function enumValue(e: protobuf.Enum, v: Json, where: string): number {
  if (typeof v === 'string' && Object.hasOwn(e.values, v)) return e.values[v]!;
  if (typeof v === 'number' && Number.isInteger(v)) return v;
  throw new CheckRequestJsonError(
    where,
    `expected one of ${Object.keys(e.values).join(', ')}, got ${JSON.stringify(v)}`,
  );
}

/** A google.protobuf.Value from any JSON (protobufjs's own Struct types use lowerCamelCase names). */
function structValue(v: Json, where: string): unknown {
  if (v === null) return { nullValue: 0 };
  if (typeof v === 'number') return { numberValue: v };
  if (typeof v === 'string') return { stringValue: scalar('string', v, where) };
  if (typeof v === 'boolean') return { boolValue: v };
  if (Array.isArray(v)) return { listValue: { values: v.map((x, i) => structValue(x, `${where}[${i}]`)) } };
  return { structValue: struct(v, where) };
}

function struct(v: Json, where: string): unknown {
  if (!isObject(v))
    throw new CheckRequestJsonError(where, `expected a JSON object (google.protobuf.Struct), got ${JSON.stringify(v)}`);
  return { fields: Object.fromEntries(Object.entries(v).map(([k, x]) => [k, structValue(x, `${where}.${k}`)])) };
}

const TIMESTAMP = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

function timestamp(v: Json, where: string): { seconds: string; nanos: number } {
  const m = typeof v === 'string' ? TIMESTAMP.exec(v) : null;
  if (!m)
    throw new CheckRequestJsonError(
      where,
      `expected an RFC 3339 time such as 2026-01-02T03:04:05.678Z, got ${JSON.stringify(v)}`,
    );
  const [, y, mo, d, h, mi, s, frac, sign, oh, om] = m;
  const ms = Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s));
  const check = new Date(ms);
  if (
    check.getUTCDate() !== Number(d) ||
    check.getUTCMonth() !== Number(mo) - 1 ||
    Number(h) > 23 ||
    Number(mi) > 59 ||
    Number(s) > 59 ||
    Number(y) < 1
  ) {
    throw new CheckRequestJsonError(where, `${JSON.stringify(v)} is not a valid time`);
  }
  const offset = sign ? (sign === '-' ? -1 : 1) * (Number(oh) * 3600 + Number(om) * 60) : 0;
  return { seconds: String(Math.floor(ms / 1000) - offset), nanos: Number((frac ?? '').padEnd(9, '0')) };
}

function duration(v: Json, where: string): { seconds: string; nanos: number } {
  const m = typeof v === 'string' ? /^(-)?(\d{1,12})(?:\.(\d{1,9}))?s$/.exec(v) : null;
  if (!m) throw new CheckRequestJsonError(where, `expected a duration such as "1.5s", got ${JSON.stringify(v)}`);
  const sign = m[1] ? -1 : 1;
  return { seconds: String(sign * Number(m[2])), nanos: sign * Number((m[3] ?? '').padEnd(9, '0')) };
}

const WRAPPERS: Record<string, string> = {
  '.google.protobuf.DoubleValue': 'double',
  '.google.protobuf.FloatValue': 'float',
  '.google.protobuf.Int64Value': 'int64',
  '.google.protobuf.UInt64Value': 'uint64',
  '.google.protobuf.Int32Value': 'int32',
  '.google.protobuf.UInt32Value': 'uint32',
  '.google.protobuf.BoolValue': 'bool',
  '.google.protobuf.StringValue': 'string',
  '.google.protobuf.BytesValue': 'bytes',
};

/** The protojson value of a message type → the object protobufjs's fromObject takes. */
function message(type: protobuf.Type, v: Json, where: string): unknown {
  const name = type.fullName;
  if (name === '.google.protobuf.Timestamp') return timestamp(v, where);
  if (name === '.google.protobuf.Duration') return duration(v, where);
  if (name === '.google.protobuf.Struct') return struct(v, where);
  if (name === '.google.protobuf.Value') return structValue(v, where);
  if (name === '.google.protobuf.ListValue') {
    if (!Array.isArray(v)) throw new CheckRequestJsonError(where, 'expected an array (google.protobuf.ListValue)');
    return { values: v.map((x, i) => structValue(x, `${where}[${i}]`)) };
  }
  if (WRAPPERS[name]) return { value: scalar(WRAPPERS[name]!, v, where) };
  if (name === '.google.protobuf.Any') return any(type, v, where);
  if (!isObject(v))
    throw new CheckRequestJsonError(where, `expected a JSON object (${name.slice(1)}), got ${JSON.stringify(v)}`);
  const byName = fieldsByName(type);
  const out: Record<string, unknown> = {};
  const oneofSet = new Map<string, string>();
  for (const [key, value] of Object.entries(v)) {
    const field = byName.get(key);
    const at = where ? `${where}.${key}` : key;
    if (!field) throw new CheckRequestJsonError(at, `no such field in ${name.slice(1)}`);
    if (field.name in out)
      throw new CheckRequestJsonError(at, `the field is given twice (as ${jsonName(field.name)} and ${field.name})`);
    if (value === null && field.resolvedType?.fullName !== '.google.protobuf.Value') continue;
    if (field.partOf) {
      const other = oneofSet.get(field.partOf.name);
      if (other)
        throw new CheckRequestJsonError(
          at,
          `${key} and ${other} are members of one oneof (${field.partOf.name}): give one`,
        );
      oneofSet.set(field.partOf.name, key);
    }
    out[field.name] = fieldValue(field, value, at);
  }
  return out;
}

function fieldValue(field: protobuf.Field, v: Json, where: string): unknown {
  if (field instanceof protobuf.MapField) {
    if (!isObject(v)) throw new CheckRequestJsonError(where, 'expected a JSON object (a map)');
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const key =
        field.keyType === 'string'
          ? k
          : field.keyType === 'bool'
            ? k === 'true'
              ? 'true'
              : k === 'false'
                ? 'false'
                : bad(`${where}.${k}`, 'a bool map key is "true" or "false"')
            : String(scalar(field.keyType, k, `${where}.${k}`));
      if (x === null) throw new CheckRequestJsonError(`${where}.${k}`, 'a map value cannot be null');
      out[key] = single(field, x, `${where}.${k}`);
    }
    return out;
  }
  if (field.repeated) {
    if (!Array.isArray(v)) throw new CheckRequestJsonError(where, 'expected an array');
    return v.map((x, i) => single(field, x, `${where}[${i}]`));
  }
  return single(field, v, where);
}

function single(field: protobuf.Field, v: Json, where: string): unknown {
  const t = field.resolvedType;
  if (t instanceof protobuf.Type) return message(t, v, where);
  if (t instanceof protobuf.Enum) return enumValue(t, v, where);
  return scalar(field.type, v, where);
}

function bad(where: string, why: string): never {
  throw new CheckRequestJsonError(where, why);
}

/** google.protobuf.Any: {"@type": "type.googleapis.com/<name>", ...fields} (a well-known type's value under "value"). */
function any(anyType: protobuf.Type, v: Json, where: string): unknown {
  if (!isObject(v) || typeof v['@type'] !== 'string')
    throw new CheckRequestJsonError(where, 'expected a JSON object with "@type" (google.protobuf.Any)');
  const url = v['@type'];
  const typeName = url.slice(url.lastIndexOf('/') + 1);
  let inner: protobuf.Type;
  try {
    inner = anyType.root.lookupType(typeName);
  } catch {
    throw new CheckRequestJsonError(
      `${where}.@type`,
      `unknown type ${JSON.stringify(typeName)}: only the types of the ext_authz protos can be read`,
    );
  }
  const { '@type': _, ...rest } = v;
  const special =
    inner.fullName.startsWith('.google.protobuf.') && !['.google.protobuf.Empty'].includes(inner.fullName);
  const obj = special ? message(inner, rest.value ?? null, `${where}.value`) : message(inner, rest, where);
  return { type_url: url, value: inner.encode(inner.fromObject(obj as Record<string, unknown>)).finish() };
}

const fieldMaps = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

function fieldsByName(type: protobuf.Type): Map<string, protobuf.Field> {
  let m = fieldMaps.get(type);
  if (!m) {
    m = new Map();
    for (const f of type.fieldsArray) {
      f.resolve();
      m.set(jsonName(f.name), f);
      m.set(f.name, f);
    }
    fieldMaps.set(type, m);
  }
  return m;
}

/** The CheckRequest bytes for its protojson text; CheckRequestJsonError naming the first problem. */
export function checkRequestFromJson(text: string): Uint8Array {
  let value: Json;
  try {
    value = JSON.parse(text) as Json;
  } catch (err) {
    throw new CheckRequestJsonError('', `not JSON: ${(err as Error).message}`);
  }
  const type = authRoot().lookupType('envoy.service.auth.v3.CheckRequest');
  const obj = message(type, value, '') as Record<string, unknown>;
  return type.encode(type.fromObject(obj)).finish();
}
