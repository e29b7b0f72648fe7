// ext_proc's Process stream (envoy.service.ext_proc.v3.ExternalProcessor), on whichever gRPC
// server serves the port: one ExtProcSession per stream (src/ext-proc/session.ts), fed the
// messages as they arrive; its answers are written in order. A failure ends the stream with
// the session's gRPC error, never with OK: Envoy would pass the rest of a response
// unfiltered. Backpressure both ways: while the session has several messages in hand, or
// Envoy is not reading the answers, the stream stops reading, so HTTP/2 flow control holds
// Envoy back instead of the service buffering a streamed response without bound.
import type { ProcessingRequest, ProcessingResponse } from './wire.js';
import { ExtProcSession } from './session.js';
import type { Runtime } from '../pipeline/runtime.js';

/** What both servers' bidirectional calls offer (grpc-js's ServerDuplexStream, and StreamCall). */
export interface DuplexCall {
  on(event: 'data', listener: (message: ProcessingRequest) => void): unknown;
  on(event: 'end' | 'cancelled' | 'drain', listener: () => void): unknown;
  on(event: 'error', listener: (err: unknown) => void): unknown;
  once(event: 'drain', listener: () => void): unknown;
  write(message: ProcessingResponse): boolean;
  end(): unknown;
  emit(event: 'error', status: { code: number; details: string }): unknown;
  pause(): unknown;
  resume(): unknown;
}

/** Messages a session may hold before the stream stops reading. */
export const MAX_PENDING_MESSAGES = 8;

/**
 * The Process handler. It returns a promise of the stream's end: a server that drains calls on
 * shutdown (grpc-js) waits for it; the service's own server waits for its streams itself.
 */
export function processHandler(runtime: Runtime): (call: DuplexCall) => Promise<void> {
  return (call) => new ProcessStream(runtime, call).done;
}

class ProcessStream {
  private readonly session: ExtProcSession;
  private closed = false;
  private pending = 0;
  private blocked = false;
  private paused = false;
  private over!: () => void;
  /** Settles when the stream is over. */
  readonly done = new Promise<void>((resolve) => (this.over = resolve));

  constructor(
    runtime: Runtime,
    private readonly call: DuplexCall,
  ) {
    this.session = new ExtProcSession(runtime);
    call.on('data', (m) => this.message(m));
    call.on('end', () => this.end());
    call.on('cancelled', () => this.stop());
    call.on('error', () => this.stop());
  }

  private message(m: ProcessingRequest): void {
    this.pending++;
    this.flow();
    void this.session.onMessage(m).then((step) => {
      this.pending--;
      if (this.closed) return;
      for (const answer of step.send) {
        if (!this.call.write(answer) && !this.blocked) {
          this.blocked = true;
          this.call.once('drain', () => {
            this.blocked = false;
            this.flow();
          });
        }
      }
      if (step.fail) {
        this.closed = true;
        this.call.emit('error', { code: step.fail.code, details: step.fail.details });
        return;
      }
      this.flow();
    });
  }

  private end(): void {
    void this.session.onEnd().then((ok) => {
      if (ok && !this.closed) this.call.end();
      this.closed = true;
      this.over();
    });
  }

  private stop(): void {
    this.closed = true;
    this.session.onError();
    this.over();
  }

  /** Reads while the session keeps up and Envoy reads the answers; stops otherwise. */
  private flow(): void {
    const stop = !this.closed && (this.pending >= MAX_PENDING_MESSAGES || this.blocked);
    if (stop && !this.paused) {
      this.paused = true;
      this.call.pause();
    } else if (!stop && this.paused) {
      this.paused = false;
      this.call.resume();
    }
  }
}
