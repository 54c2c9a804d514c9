import { decideResend, type ResendHistory } from './resend-policy';

const now = new Date('2026-11-25T12:00:00Z');
const ago = (s: number) => new Date(now.getTime() - s * 1000);
const limits = { cooldownS: 60, maxPerHour: 3 };
const history = (h: Partial<ResendHistory>): ResendHistory => ({
  lastRequestAt: ago(10),
  lastStatus: 'queued',
  requestsLastHour: 1,
  oldestLastHourAt: ago(10),
  ...h,
});

describe('the resend policy', () => {
  test('within the cooldown after a queued or sent request: refused with the seconds left', () => {
    expect(decideResend(history({ lastStatus: 'sent' }), limits, now)).toEqual({
      allowed: false,
      reason: 'cooldown',
      retryAfterS: 50,
    });
  });

  test('after the cooldown: allowed', () => {
    expect(decideResend(history({ lastRequestAt: ago(60) }), limits, now)).toEqual({ allowed: true });
  });

  test.each(['failed', 'deferred'] as const)('a last status of %s lifts the cooldown', (lastStatus) => {
    expect(decideResend(history({ lastStatus }), limits, now)).toEqual({ allowed: true });
  });

  test('the hourly cap holds even when the last delivery failed, until the oldest request is an hour old', () => {
    expect(
      decideResend(history({ lastStatus: 'failed', requestsLastHour: 3, oldestLastHourAt: ago(3000) }), limits, now),
    ).toEqual({
      allowed: false,
      reason: 'hourly_cap',
      retryAfterS: 600,
    });
  });

  test('no request yet: allowed', () => {
    expect(
      decideResend({ lastRequestAt: null, lastStatus: null, requestsLastHour: 0, oldestLastHourAt: null }, limits, now),
    ).toEqual({ allowed: true });
  });
});
