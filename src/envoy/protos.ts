// The official Envoy ext_authz and ext_proc v3 protos (vendored in proto/) and the
// gRPC health protocol through proto-loader, for grpc-js: reflection's descriptions and the
// clients of the tests, the test proxies and the benchmark. Loaded once per process, and only
// where used: both gRPC servers serve the same files read with protobufjs (proto-root.ts).
import * as protoLoader from '@grpc/proto-loader';
import * as grpc from '@grpc/grpc-js';
import { envoyIncludeDirs, loaderOptions } from './proto-root.js';

export { envoyIncludeDirs, loaderOptions };

let cached: { authDef: protoLoader.PackageDefinition; healthDef: protoLoader.PackageDefinition } | undefined;
let extProcDef: protoLoader.PackageDefinition | undefined;

export function packageDefinitions() {
  cached ??= {
    authDef: protoLoader.loadSync('envoy/service/auth/v3/external_auth.proto', {
      ...loaderOptions,
      includeDirs: envoyIncludeDirs,
    }),
    healthDef: protoLoader.loadSync('grpc/health/v1/health.proto', { ...loaderOptions, includeDirs: envoyIncludeDirs }),
  };
  return cached;
}

/** envoy.service.ext_proc.v3 (official protos), loaded on first use. */
export function extProcPackageDefinition(): protoLoader.PackageDefinition {
  extProcDef ??= protoLoader.loadSync('envoy/service/ext_proc/v3/external_processor.proto', {
    ...loaderOptions,
    includeDirs: envoyIncludeDirs,
  });
  return extProcDef;
}

/** The ExternalProcessor service: Process, a bidirectional stream per HTTP request. */
export function extProcService(): grpc.ServiceDefinition {
  const pkg = grpc.loadPackageDefinition(extProcPackageDefinition()) as AnyService;
  return pkg.envoy.service.ext_proc.v3.ExternalProcessor.service;
}

// biome-ignore lint/suspicious/noExplicitAny: grpc-js's loadPackageDefinition returns an untyped tree
type AnyService = any;

export function authorizationService(): grpc.ServiceDefinition {
  const pkg = grpc.loadPackageDefinition(packageDefinitions().authDef) as AnyService;
  return pkg.envoy.service.auth.v3.Authorization.service;
}

export function healthService(): grpc.ServiceDefinition {
  const pkg = grpc.loadPackageDefinition(packageDefinitions().healthDef) as AnyService;
  return pkg.grpc.health.v1.Health.service;
}

/** Client constructors, for tests, the test proxy and the benchmark. */
export function clientConstructors(): {
  Authorization: grpc.ServiceClientConstructor;
  Health: grpc.ServiceClientConstructor;
  ExternalProcessor: grpc.ServiceClientConstructor;
} {
  const auth = grpc.loadPackageDefinition(packageDefinitions().authDef) as AnyService;
  const health = grpc.loadPackageDefinition(packageDefinitions().healthDef) as AnyService;
  const extProc = grpc.loadPackageDefinition(extProcPackageDefinition()) as AnyService;
  return {
    Authorization: auth.envoy.service.auth.v3.Authorization,
    Health: health.grpc.health.v1.Health,
    ExternalProcessor: extProc.envoy.service.ext_proc.v3.ExternalProcessor,
  };
}
