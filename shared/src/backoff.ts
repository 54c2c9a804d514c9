/**
 * How long to wait after consecutive failures: exponential from `baseMs`, doubling per failure,
 * capped at `maxMs`, with a jitter:
 * - `none`: exactly the exponential delay (one loop retrying on its own: nothing to spread).
 * - `equal`: half fixed, half random — several instances that failed together do not retry in
 *   lockstep, yet none retries almost at once (the relay's loops, its LISTEN reconnects).
 * - `full`: uniform in [0, delay) — spreads a burst of failures best (an SMTP outage fails many
 *   mails at once; their retries must not arrive as one burst).
 */
export type BackoffPolicy = { baseMs: number; maxMs: number; jitter?: 'none' | 'equal' | 'full' };

/** The delay before the retry that follows `attempt` consecutive failures (1-based). */
export function backoffDelay(attempt: number, policy: BackoffPolicy, random: () => number = Math.random): number {
  // The exponent is capped so that 2^n stays finite; the delay is capped by maxMs anyway.
  const exponent = Math.min(Math.max(attempt - 1, 0), 30);
  const ceiling = Math.min(policy.maxMs, policy.baseMs * 2 ** exponent);
  switch (policy.jitter ?? 'none') {
    case 'none':
      return ceiling;
    case 'equal':
      return Math.round(ceiling / 2 + random() * (ceiling / 2));
    case 'full':
      return Math.floor(random() * ceiling);
  }
}
