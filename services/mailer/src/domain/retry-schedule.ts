/**
 * Delay before the retry that follows failed attempt `attempt` (1-based): exponential backoff with
 * full jitter, uniform in [0, min(max, base * 2^(attempt-1))). Full jitter spreads a burst of
 * failures (an SMTP outage fails many mails at once) so the retries do not arrive as one burst.
 */
export function retryDelayMs(attempt: number, opts: { baseMs: number; maxMs: number }, random: () => number = Math.random): number {
  const exponent = Math.max(0, attempt - 1);
  // 2^exponent overflows to Infinity for large attempts; the cap keeps the result finite.
  const ceiling = Math.min(opts.maxMs, opts.baseMs * 2 ** exponent);
  return Math.floor(random() * ceiling);
}
