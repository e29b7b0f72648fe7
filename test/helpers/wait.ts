// Waiting in tests: poll a condition with a deadline, never sleep and hope. The one helper for
// it; a test states what it waits for, so a timeout names it.

/**
 * Polls `cond` until it holds, failing after `deadlineMs` with "timed out waiting for <what>".
 * `everyMs` is the pause between polls; 0 polls on every turn of the event loop (for in-process
 * state that changes as I/O is handled), more for conditions that cost a request or a process.
 * A `cond` that throws ends the wait with its error.
 */
export async function waitFor(
  what: string,
  cond: () => Promise<boolean> | boolean,
  deadlineMs = 10_000,
  everyMs = 25,
): Promise<void> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => (everyMs > 0 ? setTimeout(resolve, everyMs) : setImmediate(resolve)));
  }
}
