import { startSmtpTestServer, type SmtpTestServer } from '../../../test/support/smtp-test-server';
import { mailRequest, startMailerHarness, type MailerHarness } from './support/mailer-harness';

/*
 * Contract guarantee 5: with a fallback, an outage of the primary delays mail by at most about
 * SMTP_TIMEOUT_MS. opossum alone judges the error rate over a rolling 10 s window of calls: right after
 * a busy healthy spell that window holds dozens of successes, and a stalled primary was tried round after
 * round (SMTP_POOL_SIZE mails per SMTP_TIMEOUT_MS) until its timeouts outnumbered them — mail delayed by
 * several timeouts. The breaker now also opens when most of the last BREAKER_VOLUME_THRESHOLD answered
 * attempts found the provider unreachable.
 */
const ENV = {
  SMTP_TIMEOUT_MS: '400',
  SMTP_POOL_SIZE: '5',
  BREAKER_VOLUME_THRESHOLD: '5',
  BREAKER_ERROR_THRESHOLD_PERCENT: '50',
  BREAKER_RESET_TIMEOUT_MS: '30000',
};

describe('mailer: a primary that stops answering right after a busy healthy spell (guarantee 5)', () => {
  let h: MailerHarness;
  let backup: SmtpTestServer;

  beforeAll(async () => {
    backup = await startSmtpTestServer();
    h = await startMailerHarness({
      env: { ...ENV, SMTP_FALLBACK_URLS: `smtp://127.0.0.1:${backup.port}?name=backup` },
    });
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.stop();
    await backup.close();
  });

  it('when the primary stalls after 60 mails went through it, then its breaker opens within one round of timeouts and the rest go to the fallback', async () => {
    const healthy = Array.from({ length: 60 }, () => mailRequest());
    await h.produce(healthy);
    for (const r of healthy) expect((await h.waitForStatus(r.request_id, 'sent')).provider).toBe('primary');

    await h.smtp.setFault({ mode: 'stall-connect' });
    const outage = Array.from({ length: 40 }, () => mailRequest());
    await h.produce(outage);
    for (const r of outage) {
      const sent = await h.waitForStatus(r.request_id, 'sent', 30_000);
      expect(sent.provider).toBe('backup');
      expect(sent.attempt).toBe(1);
    }
    expect(h.mailer?.providerState('primary')).toBe('open');
    // Attempts the primary failed: at most the pool's first round (5 connections) and the mails that took
    // a freed connection before the third timeout opened the breaker. Without the rule, opossum's window
    // (60 successes) kept the breaker closed until the timeouts outnumbered them: about every mail of the
    // outage was tried on the primary first.
    const primaryFailures =
      (await h.metric('mail_sent_total', { result: 'deferred', provider: 'primary', error_class: 'timeout' })) +
      (await h.metric('mail_sent_total', { result: 'deferred', provider: 'primary', error_class: 'connection' }));
    expect(primaryFailures).toBeGreaterThanOrEqual(3);
    expect(primaryFailures).toBeLessThanOrEqual(10);
  });
});
