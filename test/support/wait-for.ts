/**
 * Polls `probe` until it returns a truthy value, or fails after `timeoutMs` with `message` and the
 * last value or error seen. Replaces sleeps in tests: no timing guesses, a clear failure instead.
 */
export type Truthy<T> = Exclude<T, false | null | undefined | 0 | ''>;

export async function waitFor<T>(
  probe: () => T | Promise<T>,
  opts: { timeoutMs?: number; intervalMs?: number; message?: string } = {},
): Promise<Truthy<T>> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value as Truthy<T>;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const seen = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Error(`${opts.message ?? 'condition not met'} within ${timeoutMs} ms (last: ${seen?.slice(0, 500)})`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 50));
  }
}
