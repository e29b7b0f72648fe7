// A request the service refuses to interpret, with the HTTP status and the stable code
// that become the deny response.
export class RequestRejected extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly description: string,
  ) {
    super(description);
  }
}
