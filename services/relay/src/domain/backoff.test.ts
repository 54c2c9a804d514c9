import { backoffDelay } from './backoff';

describe('backoffDelay', () => {
  test('doubles per consecutive failure between half and all of the exponential delay', () => {
    expect(backoffDelay(1, 100, 10_000, () => 0)).toBe(50);
    expect(backoffDelay(1, 100, 10_000, () => 1)).toBe(100);
    expect(backoffDelay(4, 100, 10_000, () => 0)).toBe(400);
    expect(backoffDelay(4, 100, 10_000, () => 1)).toBe(800);
  });

  test('never exceeds the maximum, however many failures', () => {
    expect(backoffDelay(1_000, 100, 10_000, () => 1)).toBe(10_000);
  });
});
