import { performance } from 'node:perf_hooks';

/**
 * Paces the starts of a repeated round (a group commit, a publishing round): each call resolves when
 * at least `minIntervalMs` passed since the previous call resolved, and never in the same event-loop
 * turn, so work arriving in that turn joins the round. Under load, rounds are fewer and fuller; after
 * a quiet spell the next one starts at once.
 */
export function createPacer(minIntervalMs: number): () => Promise<void> {
  let lastStartAt = Number.NEGATIVE_INFINITY;
  return async () => {
    const wait = lastStartAt + minIntervalMs - performance.now();
    await new Promise((resolve) => (wait > 0 ? setTimeout(resolve, wait) : setImmediate(resolve)));
    lastStartAt = performance.now();
  };
}
