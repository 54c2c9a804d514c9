import { createMailOutage } from './mail-outage';

describe('mail outage as learnt from delivery statuses', () => {
  let now = new Date('2026-11-25T14:00:00Z');
  const clock = { now: () => now };
  const at = (s: number) => new Date(Date.parse('2026-11-25T14:00:00Z') + s * 1000).toISOString();

  it(
    'when a circuit_open deferral arrives, then an outage is known until its next attempt; a sent status ends ' + 'it',
    () => {
      const outage = createMailOutage(clock);
      expect(outage.known()).toBe(false);
      outage.observe({ status: 'deferred', error_class: 'circuit_open', next_attempt_at: at(30) }, at(0));
      expect(outage.known()).toBe(true);
      now = new Date(at(10));
      outage.observe({ status: 'sent', error_class: null }, at(10));
      expect(outage.known()).toBe(false);
    },
  );

  it('when the next attempt time passes with no news, then the outage is no longer assumed', () => {
    now = new Date(at(0));
    const outage = createMailOutage(clock);
    outage.observe({ status: 'deferred', error_class: 'circuit_open', next_attempt_at: at(30) }, at(0));
    now = new Date(at(31));
    expect(outage.known()).toBe(false);
  });

  it('when an older event arrives after a newer one, then it changes nothing; other deferrals are no outage', () => {
    now = new Date(at(0));
    const outage = createMailOutage(clock);
    outage.observe({ status: 'sent', error_class: null }, at(5));
    outage.observe({ status: 'deferred', error_class: 'circuit_open', next_attempt_at: at(30) }, at(1));
    expect(outage.known()).toBe(false);
    outage.observe({ status: 'deferred', error_class: 'timeout', next_attempt_at: at(30) }, at(6));
    expect(outage.known()).toBe(false);
  });
});
