import { backoffDelay } from './backoff';

describe('backoffDelay', () => {
  test('without jitter, the delay doubles per consecutive failure from the base', () => {
    const policy = { baseMs: 100, maxMs: 10_000 };
    expect([1, 2, 3, 4].map((n) => backoffDelay(n, policy))).toEqual([100, 200, 400, 800]);
  });

  test('with equal jitter, the delay lies between half and all of the exponential delay', () => {
    const policy = { baseMs: 100, maxMs: 10_000, jitter: 'equal' as const };
    expect(backoffDelay(1, policy, () => 0)).toBe(50);
    expect(backoffDelay(1, policy, () => 1)).toBe(100);
    expect(backoffDelay(4, policy, () => 0)).toBe(400);
    expect(backoffDelay(4, policy, () => 1)).toBe(800);
  });

  test('with full jitter, the delay is uniform below the exponential delay', () => {
    const policy = { baseMs: 1_000, maxMs: 60_000, jitter: 'full' as const };
    expect(backoffDelay(1, policy, () => 0)).toBe(0);
    expect(backoffDelay(1, policy, () => 0.5)).toBe(500);
    expect(backoffDelay(3, policy, () => 0.999)).toBe(3_996);
  });

  test('never exceeds the maximum and stays finite, however many failures', () => {
    for (const jitter of ['none', 'equal', 'full'] as const) {
      const delay = backoffDelay(100_000, { baseMs: 100, maxMs: 10_000, jitter }, () => 0.999999);
      expect(delay).toBeLessThanOrEqual(10_000);
      expect(Number.isFinite(delay)).toBe(true);
    }
  });

  test('an attempt of 0 or less is treated as the first failure', () => {
    expect(backoffDelay(0, { baseMs: 100, maxMs: 10_000 })).toBe(100);
    expect(backoffDelay(-3, { baseMs: 100, maxMs: 10_000 })).toBe(100);
  });
});
