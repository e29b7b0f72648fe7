// The official .proto files, loaded with protobufjs (the library under proto-loader) without
// grpc-js: the Envoy ext_authz and ext_proc v3 protos vendored in proto/ (scripts/sync-protos.mjs
// copies them from pinned upstream revisions; proto/upstream.json names them) and the gRPC
// health protocol. Both gRPC servers decode and encode with these types; reflection and the
// tests' clients load the same files through proto-loader (src/envoy/protos.ts). Loaded once
// per process, on first use.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import protobuf from 'protobufjs';
import { projectRoot } from '../config/paths.mjs';
import type { ServiceDefinition } from '../grpc/server.js';

export type { MethodDefinition, ServiceDefinition } from '../grpc/server.js';

const require = createRequire(import.meta.url);

/** The one include path of every .proto the service loads (google/protobuf/* come with protobufjs). */
const projectProtoDir = join(projectRoot, 'proto');
export const envoyIncludeDirs = [projectProtoDir];

/** How decoded messages become plain objects, for proto-loader and for protobufjs alike: field names as in the .proto files. */
export const loaderOptions = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
} as const;

/** protobufjs's toObject options: the conversion part of loaderOptions. */
const toObjectOptions: protobuf.IConversionOptions = { longs: String, enums: String, defaults: false, oneofs: true };

let commonTypesAdded = false;

function loadRoot(file: string, includeDirs: string[]): protobuf.Root {
  if (!commonTypesAdded) {
    // The validation and annotation protos import google/protobuf/descriptor.proto, which
    // protobufjs ships as JSON but does not register among its common types (proto-loader does the same).
    const descriptor = require('protobufjs/google/protobuf/descriptor.json') as {
      nested: { google: { nested: { protobuf: { nested: protobuf.INamespace['nested'] } } } };
    };
    protobuf.common('descriptor', descriptor.nested.google.nested.protobuf.nested!);
    commonTypesAdded = true;
  }
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    for (const dir of includeDirs) {
      const p = join(dir, target);
      if (existsSync(p)) return p;
    }
    return target; // protobufjs's bundled google/protobuf types answer these
  };
  root.loadSync(file, { keepCase: true });
  root.resolveAll();
  return root;
}

let auth: protobuf.Root | undefined;
let health: protobuf.Root | undefined;
let extProc: protobuf.Root | undefined;

export function authRoot(): protobuf.Root {
  auth ??= loadRoot('envoy/service/auth/v3/external_auth.proto', envoyIncludeDirs);
  return auth;
}

export function extProcRoot(): protobuf.Root {
  extProc ??= loadRoot('envoy/service/ext_proc/v3/external_processor.proto', envoyIncludeDirs);
  return extProc;
}

export function healthRoot(): protobuf.Root {
  health ??= loadRoot('grpc/health/v1/health.proto', [projectProtoDir]);
  return health;
}

function serializer(type: protobuf.Type): (value: unknown) => Buffer {
  return (value) => {
    if (Buffer.isBuffer(value)) return value;
    const bytes = type.encode(type.fromObject(value as Record<string, unknown>)).finish();
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

function deserializer(type: protobuf.Type): (bytes: Buffer) => unknown {
  return (bytes) => type.toObject(type.decode(bytes), toObjectOptions);
}

/** A service's methods as plain-object (de)serializers, as proto-loader builds them. */
export function serviceDefinition(root: protobuf.Root, fullName: string): ServiceDefinition {
  const service = root.lookupService(fullName);
  const out: ServiceDefinition = {};
  for (const m of service.methodsArray) {
    m.resolve();
    const req = m.resolvedRequestType!;
    const res = m.resolvedResponseType!;
    out[m.name] = {
      path: `/${fullName}/${m.name}`,
      originalName: m.name.charAt(0).toLowerCase() + m.name.slice(1),
      requestStream: m.requestStream === true,
      responseStream: m.responseStream === true,
      requestSerialize: serializer(req),
      requestDeserialize: deserializer(req),
      responseSerialize: serializer(res),
      responseDeserialize: deserializer(res),
    };
  }
  return out;
}

/** A decoded protobufjs message as the plain object proto-loader would have given (for readers written against that shape). */
export function plainObject(message: protobuf.Message): Record<string, unknown> {
  return message.$type.toObject(message, toObjectOptions);
}
