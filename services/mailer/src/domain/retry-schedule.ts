import { backoffDelay } from '@shared/backoff';

/**
 * Delay before the retry that follows failed attempt `attempt` (1-based): exponential backoff with
 * full jitter, uniform in [0, min(max, base * 2^(attempt-1))). Full jitter spreads a burst of
 * failures (an SMTP outage fails many mails at once) so the retries do not arrive as one burst.
 */
export function retryDelayMs(
  attempt: number,
  opts: { baseMs: number; maxMs: number },
  random: () => number = Math.random,
): number {
  return backoffDelay(attempt, { ...opts, jitter: 'full' }, random);
}
