// A request the service refuses to interpret: thrown by the readers of the request, caught
// by the pipeline and answered as the deny of its code (status from the catalogue).
import { CODES, type DenyCode } from './codes.js';
import type { JsonRpcError } from './outcome.js';

export class RequestRejected extends Error {
  readonly status: number;

  constructor(
    readonly code: DenyCode,
    readonly description: string,
    /** The request's id and the error's data, for codes answered as JSON-RPC errors. */
    readonly jsonRpc?: Omit<JsonRpcError, 'code'>,
  ) {
    super(description);
    this.status = CODES[code].status;
  }
}
