/**
 * Exponential backoff with "equal jitter": half the exponential delay is fixed, half random, so
 * several relays that failed together do not retry in lockstep, yet none retries almost at once.
 * `attempt` counts consecutive failures from 1.
 */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random: () => number = Math.random): number {
  const exponential = Math.min(maxMs, baseMs * 2 ** Math.min(Math.max(attempt - 1, 0), 30));
  return Math.round(exponential / 2 + random() * (exponential / 2));
}
