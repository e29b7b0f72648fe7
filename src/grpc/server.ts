// The gRPC server as the service sees it, whichever implementation serves the port: the own
// server on node:http2 (h2-server.ts, the default) or grpc-js (grpc-js-server.ts, the
// reference implementation). This folder is a library: it knows gRPC and HTTP/2, and nothing
// of the product; the service (src/server/grpc-server.ts) hands it methods and handlers.

import type { CallError } from './wire.js';

/** One method of a service, in the shape grpc-js and proto-loader use (so one handler table serves both servers). */
export interface MethodDefinition {
  path: string;
  originalName: string;
  requestStream: boolean;
  responseStream: boolean;
  requestSerialize(value: unknown): Buffer;
  requestDeserialize(bytes: Buffer): unknown;
  responseSerialize(value: unknown): Buffer;
  responseDeserialize(bytes: Buffer): unknown;
}

export type ServiceDefinition = Record<string, MethodDefinition>;

/** A unary call answered from bytes to bytes. */
export interface BytesCall {
  /** A request metadata value by lower-case name (the first, when repeated). */
  header(name: string): string | undefined;
  /** Answers with one message and status OK. */
  reply(message: Uint8Array): void;
  /** Ends the call with an error status and no message. */
  fail(status: CallError): void;
}

/** The request message's bytes, and the call to answer on. */
export type BytesHandler = (message: Buffer, call: BytesCall) => void;

/**
 * A handler in grpc-js's shapes: unary `(call, callback)`, server-streaming `(call)` with
 * `call.request`, bidirectional `(call)` on a Duplex of messages. A handler may return a
 * promise that settles when it is done with the call; shutdown waits for it.
 */
export type Handler = (...args: never[]) => unknown;

export interface GrpcServer {
  /** A unary method answered from the request's bytes (the fast path: no decoding here). */
  addBytesUnary(path: string, handler: BytesHandler): void;
  /** A service whose handlers are written in grpc-js's shapes, by method name. */
  addService(def: ServiceDefinition, impl: Record<string, Handler>): void;
  /** Server reflection describing these packages (proto-loader package definitions). */
  addReflection(packages: object): Promise<void>;
  /** Listens on "host:port" or "unix:/path"; resolves with the TCP port (0 for a socket). */
  bind(address: string): Promise<number>;
  /** GOAWAY to every connection; `cb` once the calls in flight have been answered. */
  tryShutdown(cb: () => void): void;
  /** Cuts every connection now (after the grace period). */
  forceShutdown(): void;
}

/** Reflection's registration, on either server: it adds its service through `addService`. */
export async function addReflectionTo(server: Pick<GrpcServer, 'addService'>, packages: object): Promise<void> {
  const { ReflectionService } = await import('@grpc/reflection');
  new ReflectionService(packages as never).addToServer(server as never);
}
