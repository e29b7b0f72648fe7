// How the tests listen a gRPC server built directly (the service passes its own listen): on
// "host:port" or "unix:/path", as the service does.
import type { Server } from 'node:net';
import { listenOn } from '../../src/server/listen-address.js';

export const grpcListen = (server: Server, address: string): Promise<number> =>
  listenOn(server, address, { socketMode: 0o660 });
