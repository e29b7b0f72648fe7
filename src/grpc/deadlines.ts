// Call deadlines (grpc-timeout) on one timer. Envoy sends the same timeout on every Check,
// so deadlines arrive in order: they queue in arrival order and one timer, armed for the
// oldest call still running, expires what is late. A finished call only marks itself done;
// it is dropped when the queue reaches it. A deadline earlier than the queue's last (a
// client whose timeouts vary) gets a timer of its own.

export interface Deadline {
  /** performance.now() at which the call is late. */
  readonly at: number;
  /** Set by the call when it finishes: the queue then drops it. */
  done: boolean;
  /** Called once when the deadline passes before the call finished; the call marks itself done. */
  expire(): void;
}

export class DeadlineQueue {
  private items: Deadline[] = [];
  private head = 0;
  private timer: NodeJS.Timeout | undefined;

  add(d: Deadline): void {
    const { items } = this;
    if (items.length > this.head && d.at < items[items.length - 1]!.at) {
      const t = setTimeout(expireOne, Math.max(0, d.at - performance.now()), d);
      t.unref();
      return;
    }
    items.push(d);
    if (this.timer === undefined) this.arm(d.at);
  }

  /** Calls waiting (done ones not yet dropped included): for tests. */
  get size(): number {
    return this.items.length - this.head;
  }

  /** Stops the timer (the server is closing; calls left are cancelled by their streams). */
  clear(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.items = [];
    this.head = 0;
  }

  private arm(at: number): void {
    this.timer = setTimeout(DeadlineQueue.fire, Math.max(0, at - performance.now()), this);
    this.timer.unref();
  }

  private static fire(q: DeadlineQueue): void {
    q.timer = undefined;
    const now = performance.now();
    const { items } = q;
    let head = q.head;
    while (head < items.length) {
      const d = items[head]!;
      if (d.done) {
        head++;
      } else if (d.at <= now) {
        head++;
        d.expire();
      } else {
        break;
      }
    }
    if (head === items.length) {
      q.items = [];
      q.head = 0;
      return;
    }
    if (head > 1024 && head * 2 > items.length) {
      q.items = items.slice(head);
      head = 0;
    }
    q.head = head;
    q.arm(q.items[head]!.at);
  }
}

function expireOne(d: Deadline): void {
  if (!d.done) d.expire();
}
