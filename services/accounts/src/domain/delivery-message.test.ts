import { deliveryError, deliveryMessage } from './delivery-message';

const now = new Date('2026-11-25T14:00:00Z');

describe('the human-readable delivery message', () => {
  it('when every provider is open, then it says the server is not responding and when the retry is (UTC)', () => {
    expect(
      deliveryMessage(
        { status: 'deferred', errorClass: 'circuit_open', nextAttemptAt: new Date('2026-11-25T14:05:00Z') },
        now,
      ),
    ).toBe('The mail server is not responding; we will retry automatically at 14:05 UTC.');
  });

  it.each([
    ['queued', null, /queued/],
    ['sent', null, /has been sent/],
    ['deferred', 'timeout', /did not answer in time; we will retry automatically shortly\./],
    ['failed', 'rejected', /refused the address/],
    ['failed', null, /newer confirmation email/],
    ['failed', 'timeout', /could not send/],
  ] as const)('when %s / %s, then the sentence fits and holds no SMTP text', (status, errorClass, pattern) => {
    const message = deliveryMessage({ status, errorClass }, now);
    expect(message).toMatch(pattern);
    expect(message).not.toMatch(/\d{3} \d\.\d\.\d/);
  });

  it('when simply queued, then email_info.error is null; during a known outage it names the outage', () => {
    expect(deliveryError({ status: 'queued', errorClass: null }, now)).toBeNull();
    expect(deliveryError({ status: 'queued', errorClass: null }, now, new Date('2026-11-26T01:00:00Z'))).toMatch(
      /at 2026-11-26 01:00 UTC/,
    );
  });
});
