import { retryDelayMs } from './retry-schedule';

describe('retryDelayMs (exponential backoff, full jitter)', () => {
  const opts = { baseMs: 100, maxMs: 1_000 };

  it('doubles the ceiling with each attempt, starting at the base', () => {
    const justBelowOne = () => 0.999999;
    expect(retryDelayMs(1, opts, justBelowOne)).toBe(99);
    expect(retryDelayMs(2, opts, justBelowOne)).toBe(199);
    expect(retryDelayMs(3, opts, justBelowOne)).toBe(399);
  });

  it('never exceeds the cap, even for attempt numbers that would overflow', () => {
    expect(retryDelayMs(5, opts, () => 0.999999)).toBe(999);
    expect(retryDelayMs(5_000, opts, () => 0.999999)).toBe(999);
  });

  it('spreads retries over the whole window (full jitter), down to zero', () => {
    expect(retryDelayMs(3, opts, () => 0)).toBe(0);
    expect(retryDelayMs(3, opts, () => 0.5)).toBe(200);
  });
});
