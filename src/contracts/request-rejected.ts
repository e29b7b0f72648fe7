// A request the service refuses to interpret: thrown by the readers of the request, caught
// by the pipeline and answered as the deny of its code (status from the catalogue).
import { CODES, type DenyCode } from './codes.js';

export class RequestRejected extends Error {
  readonly status: number;

  constructor(
    readonly code: DenyCode,
    readonly description: string,
  ) {
    super(description);
    this.status = CODES[code].status;
  }
}
