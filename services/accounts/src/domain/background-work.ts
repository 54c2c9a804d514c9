/**
 * Work a use case finishes after its response went out (the anonymous resend). Tracked so that a
 * graceful shutdown waits for it before the pool closes, instead of answering 202 and then losing it.
 */
export type BackgroundWork = {
  track: (work: Promise<void>) => void;
  inFlight: () => number;
  /** Resolves when everything tracked so far has settled. */
  drain: () => Promise<void>;
};

export function createBackgroundWork(): BackgroundWork {
  const pending = new Set<Promise<void>>();
  return {
    track: (work) => {
      // The caller logs its own failures; a rejection here must neither escape nor stop the drain.
      const settled = work.catch(() => undefined);
      pending.add(settled);
      void settled.finally(() => pending.delete(settled));
    },
    inFlight: () => pending.size,
    drain: async () => {
      while (pending.size > 0) await Promise.allSettled([...pending]);
    },
  };
}
