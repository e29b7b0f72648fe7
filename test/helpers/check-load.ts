// Steady Check traffic for fault tests: lanes that each send one Check after another to a
// running service (real gRPC), each Check with the decision it must get. Every answer is
// counted, and any wrong decision or gRPC error is kept, so a test can wait for "N more
// Checks answered" (an event) and prove at the end that nothing was decided wrong.
import { deniedStatus, type CheckResponse } from './service.js';

export interface Expected {
  /** The CheckRequest. */
  request: Record<string, unknown>;
  /** The HTTP status the answer must carry: 200 for an allow. */
  status: number;
  what: string;
}

export class CheckLoad {
  answered = 0;
  readonly wrong: string[] = [];
  readonly errors: string[] = [];
  private running = true;
  private readonly lanes: Promise<void>[] = [];
  private readonly waiters = new Set<() => void>();

  constructor(
    check: (req: Record<string, unknown>, lane: number) => Promise<CheckResponse>,
    pick: (n: number) => Expected,
    lanes = 8,
  ) {
    let n = 0;
    for (let lane = 0; lane < lanes; lane++) {
      this.lanes.push(
        (async () => {
          while (this.running) {
            const e = pick(n++);
            try {
              const res = await check(e.request, lane);
              const status = res.ok_response ? 200 : deniedStatus(res);
              if (status !== e.status && this.wrong.length < 20)
                this.wrong.push(`${e.what}: ${status}, expected ${e.status} (${res.denied_response?.body ?? ''})`);
            } catch (err) {
              if (this.errors.length < 20) this.errors.push(`${e.what}: ${(err as Error).message}`);
            }
            this.answered++;
            for (const w of this.waiters) w();
          }
        })(),
      );
    }
  }

  /** Resolves once `count` more Checks have been answered than when it was called. */
  more(count: number, deadlineMs = 120_000): Promise<void> {
    const target = this.answered + count;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`fewer than ${count} Checks answered before the deadline`));
      }, deadlineMs);
      const check = () => {
        if (this.answered < target) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.lanes);
  }
}
