import { median } from '../../bench/proc-stats';

describe('bench/soak: the per-minute RSS figure is a median of the readings', () => {
  it('when one reading of a minute dips (a process caught right after a GC), then the figure does not move', () => {
    const steady = Array.from({ length: 59 }, () => 210);
    expect(median([...steady.slice(0, 30), 190, ...steady.slice(30)])).toBe(210);
  });

  it('when the readings climb through the minute (a leak), then the figure climbs with them', () => {
    expect(median([200, 204, 208, 212, 216])).toBe(208);
    expect(median([200, 210, 220, 230])).toBe(215);
  });

  it('when there is no reading, then the figure is 0', () => {
    expect(median([])).toBe(0);
  });
});
