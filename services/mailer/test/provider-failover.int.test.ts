import { labelNameSets, metricSeries } from '../../../test/support/metric-series';
import { startSmtpTestServer, type SmtpTestServer } from '../../../test/support/smtp-test-server';
import { waitFor } from '../../../test/support/wait-for';
import { mailRequest, startMailerHarness, type MailerHarness } from './support/mailer-harness';

const BREAKER = {
  SMTP_TIMEOUT_MS: '400',
  BREAKER_VOLUME_THRESHOLD: '3',
  BREAKER_ERROR_THRESHOLD_PERCENT: '50',
  BREAKER_RESET_TIMEOUT_MS: '2000',
};

describe('mailer: fallback SMTP providers (issue 13)', () => {
  let h: MailerHarness;
  let backup: SmtpTestServer;

  beforeAll(async () => {
    backup = await startSmtpTestServer();
    h = await startMailerHarness({
      env: { ...BREAKER, SMTP_FALLBACK_URLS: `smtp://127.0.0.1:${backup.port}?name=backup` },
    });
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.stop();
    await backup.close();
  });

  const sentOnce = (server: SmtpTestServer, to: string) => server.messages.filter((m) => m.to.includes(to)).length;

  it(
    'when the primary stalls, then every mail goes out once through the fallback at once (no backoff), named ' +
      'by its label, and the breaker moves traffic off the primary',
    async () => {
      await h.smtp.setFault({ mode: 'stall-connect' });
      const requests = Array.from({ length: 20 }, () => mailRequest());
      await h.produce(requests);
      for (const r of requests) {
        const sent = await h.waitForStatus(r.request_id, 'sent', 30_000);
        expect(sent.provider).toBe('backup');
        // A failover is not a retry: the first attempt is the one that went out.
        expect(sent.attempt).toBe(1);
        expect(h.statusesOf(r.request_id).filter((s) => s.status === 'deferred')).toHaveLength(0);
      }
      for (const r of requests) {
        expect(sentOnce(backup, r.to)).toBe(1);
        expect(sentOnce(h.smtp, r.to)).toBe(0);
      }
      // Open, or half-open by now (BREAKER_RESET_TIMEOUT_MS passed while the 20 went out) with no mail for a trial.
      expect(h.mailer?.providerState('primary')).not.toBe('closed');
      expect(h.mailer?.circuitState()).toBe('closed');
      expect(await h.metric('mail_smtp_circuit_state', { provider: 'primary' })).toBeGreaterThanOrEqual(1);
      expect(await h.metric('mail_smtp_circuit_state', { provider: 'backup' })).toBe(0);
      expect(await h.metric('mail_smtp_fallback_active')).toBe(1);
      expect(
        await h.metric('mail_sent_total', { result: 'sent', provider: 'backup', error_class: 'none' }),
      ).toBeGreaterThanOrEqual(20);
      expect(
        await h.metric('mail_sent_total', { result: 'deferred', provider: 'primary', error_class: 'timeout' }),
      ).toBeGreaterThanOrEqual(3);
      // What /metrics serves: the contract's mail_send_duration_seconds{result,provider}, per provider.
      const exposition = await h.registry.metrics();
      expect(labelNameSets(exposition, 'mail_send_duration_seconds_count')).toEqual([
        ['provider', 'result', 'service'],
      ]);
      const sendDurations = metricSeries(exposition, 'mail_send_duration_seconds_count');
      expect(
        sendDurations.find((s) => s.labels.result === 'sent' && s.labels.provider === 'backup')?.value,
      ).toBeGreaterThanOrEqual(20);
      expect(
        sendDurations.find((s) => s.labels.result === 'deferred' && s.labels.provider === 'primary')?.value,
      ).toBeGreaterThanOrEqual(3);
      // Never a credential or URL in the status: the label only.
      expect(JSON.stringify(h.statuses())).not.toContain(String(backup.port));
    },
  );

  it('when the primary recovers, then its breaker closes and new mail goes through the primary again', async () => {
    await h.smtp.setFault({ mode: 'healthy' });
    // The half-open trial needs a mail: keep one coming until the primary has taken one.
    await waitFor(
      async () => {
        const probe = mailRequest();
        await h.produce([probe]);
        await h.waitForStatus(probe.request_id, 'sent', 10_000);
        return h.mailer?.providerState('primary') === 'closed';
      },
      { timeoutMs: 20_000, intervalMs: 300, message: 'primary breaker closed' },
    );
    expect(await h.metric('mail_smtp_fallback_active')).toBe(0);
    const after = Array.from({ length: 5 }, () => mailRequest());
    await h.produce(after);
    for (const r of after) {
      expect((await h.waitForStatus(r.request_id, 'sent')).provider).toBe('primary');
      expect(sentOnce(h.smtp, r.to)).toBe(1);
      expect(sentOnce(backup, r.to)).toBe(0);
    }
  });

  it(
    'when the primary takes a mail but its final 250 is lost, then the fallback sends it and the copy is ' +
      'flagged and counted as a possible duplicate (the one window SMTP leaves open)',
    async () => {
      await waitFor(() => h.mailer?.providerState('primary') === 'closed', {
        timeoutMs: 30_000,
        message: 'the primary breaker closed before the lost-ack case',
      });
      const before = await h.metric('mail_duplicate_sends_total');
      await h.smtp.setFault({ mode: 'lose-ack' });
      const request = mailRequest();
      await h.produce([request]);
      const sent = await h.waitForStatus(request.request_id, 'sent', 30_000);
      await h.smtp.setFault({ mode: 'healthy' });
      expect(sent.provider).toBe('backup');
      expect(sentOnce(h.smtp, request.to)).toBe(1);
      expect(sentOnce(backup, request.to)).toBe(1);
      expect(await h.row(request.request_id)).toMatchObject({ state: 'sent', possible_duplicate: true });
      expect(await h.metric('mail_duplicate_sends_total')).toBe(before + 1);
    },
  );

  it(
    'when the primary rejects an address permanently, then it fails as rejected and is not tried on the ' + 'fallback',
    async () => {
      const request = mailRequest();
      h.smtp.rejectRecipient(request.to);
      await h.produce([request]);
      const failed = await h.waitForStatus(request.request_id, 'failed');
      expect(failed).toMatchObject({ error_class: 'rejected', provider: 'primary' });
      expect(sentOnce(backup, request.to)).toBe(0);
    },
  );

  it(
    'when every provider stalls, then both breakers open and a request recorded afterwards is deferred as ' +
      'circuit_open with its next attempt time at once, then sent after recovery',
    async () => {
      await h.smtp.setFault({ mode: 'reset' });
      await h.smtp.setFault({ mode: 'stall-connect' });
      await backup.setFault({ mode: 'reset' });
      await backup.setFault({ mode: 'stall-connect' });
      await h.produce(Array.from({ length: 8 }, () => mailRequest()));
      await waitFor(() => h.mailer?.circuitState() === 'open', { timeoutMs: 20_000, message: 'every breaker open' });
      const connections = h.smtp.connectionCount() + backup.connectionCount();

      const late = mailRequest();
      await h.produce([late]);
      const deferred = await h.waitForStatus(late.request_id, 'deferred', 5_000);
      expect(deferred.error_class).toBe('circuit_open');
      expect(deferred.attempt).toBe(0);
      const next = Date.parse(deferred.next_attempt_at ?? '');
      expect(next).toBeGreaterThan(Date.now() - 2_000);
      expect(next).toBeLessThan(Date.now() + 10_000);
      // The honest status costs no SMTP connection while every breaker is open.
      if (h.mailer?.circuitState() === 'open')
        expect(h.smtp.connectionCount() + backup.connectionCount()).toBe(connections);

      await h.smtp.setFault({ mode: 'healthy' });
      await backup.setFault({ mode: 'healthy' });
      const sent = await h.waitForStatus(late.request_id, 'sent', 30_000);
      expect(sent.provider).toBeDefined();
      expect(sentOnce(h.smtp, late.to) + sentOnce(backup, late.to)).toBe(1);
    },
  );
});
