import { robustTrend } from '../../bench/proc-stats';

describe('bench/soak: RSS growth is judged from a trend through the minutes after the warm-up', () => {
  it('when the first judged minute caught a collection (the relay of the failed 15:10 soak), then the plateau after it is judged flat', () => {
    // Minutes 3..10 of that run: 105 MiB right after a collection, then 120-123 to the end. From the
    // single reference minute that read +17.1 % and failed the soak.
    const trend = robustTrend([105, 120, 121, 122, 122, 123, 123, 123]);
    expect(trend.growth).toBeGreaterThan(0);
    expect(trend.growth).toBeLessThan(0.04);
  });

  it('when RSS climbs 1.5 % of its start every minute (a leak), then the growth over eight minutes is over 10 %', () => {
    const leak = Array.from({ length: 8 }, (_, i) => 100 * (1 + 0.015 * i));
    expect(robustTrend(leak).growth).toBeCloseTo(0.105, 3);
  });

  it('when a leaking process reads low at the first judged minute or at the last, then the leak is still seen whole', () => {
    expect(robustTrend([90, 102, 104, 106, 108, 110, 112, 114]).growth).toBeGreaterThan(0.1);
    expect(robustTrend([100, 102, 104, 106, 108, 110, 112, 95]).growth).toBeGreaterThan(0.1);
  });

  it('when RSS shrinks, then the growth is negative; with one minute or none, it is 0', () => {
    expect(robustTrend([130, 128, 126, 124]).growth).toBeLessThan(0);
    expect(robustTrend([120])).toEqual({ from: 120, to: 120, growth: 0 });
    expect(robustTrend([])).toEqual({ from: 0, to: 0, growth: 0 });
  });
});
