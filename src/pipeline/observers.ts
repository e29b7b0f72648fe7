import type { Observer } from '../decision/phases.js';

/** One observer that tells several (decision log, metrics): a failing one never stops the others or the Check. */
export function fanOut(observers: readonly Observer[], onError: (err: unknown) => void = () => undefined): Observer {
  const list = [...observers];
  if (list.length === 1) return list[0]!;
  return {
    decided(trace) {
      for (const o of list) {
        try {
          o.decided(trace);
        } catch (err) {
          onError(err);
        }
      }
    },
    drifted(drift) {
      for (const o of list) {
        try {
          o.drifted?.(drift);
        } catch (err) {
          onError(err);
        }
      }
    },
    listed(trace) {
      for (const o of list) {
        try {
          o.listed?.(trace);
        } catch (err) {
          onError(err);
        }
      }
    },
  };
}
