import { waitFor } from '../../../test/support/wait-for';
import { mailRequest, startMailerHarness, type MailerHarness } from './support/mailer-harness';

const AUTH = { user: 'mailer', pass: 'S3cr3t-smtp-password' };

describe('mailer: transient SMTP failures are deferred and retried until SMTP recovers', () => {
  let h: MailerHarness;

  beforeAll(async () => {
    h = await startMailerHarness({ smtpAuth: AUTH });
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.smtp.setFault({ mode: 'healthy' });
    await h.stop();
  });

  it.each([
    ['AUTH fails', { mode: 'auth-fail' } as const, 'auth'],
    ['the connection is refused', { mode: 'refuse' } as const, 'connection'],
    ['the connection is reset', { mode: 'reset' } as const, 'connection'],
    ['the server answers 421', { mode: 'transient', code: 421 } as const, 'unknown'],
    ['the server answers 451', { mode: 'transient', code: 451 } as const, 'unknown'],
    ['the server stalls after EHLO', { mode: 'stall-ehlo' } as const, 'timeout'],
  ])(
    'when %s, then the request is deferred with its class, and sent once when SMTP is healthy again',
    async (_story, fault, errorClass) => {
      // A fault applies to new connections; cutting the pool's idle ones first makes the next send meet it.
      await h.smtp.setFault({ mode: 'reset' });
      await h.smtp.setFault(fault);
      const request = mailRequest();
      await h.produce([request]);

      const deferred = await h.waitForStatus(request.request_id, 'deferred');
      expect(deferred).toMatchObject({ error_class: errorClass, attempt: 1 });
      await h.smtp.setFault({ mode: 'healthy' });

      const sent = await h.waitForStatus(request.request_id, 'sent');
      expect(sent.attempt).toBeGreaterThan(1);
      expect(h.smtp.messages.filter((m) => m.to.includes(request.to))).toHaveLength(1);
      expect(h.statusesOf(request.request_id).filter((s) => s.status === 'failed')).toHaveLength(0);
    },
  );

  it(
    'when two requests of one user wait for SMTP, then only the newer is sent and the older gets failed with ' +
      'no error class',
    async () => {
      await h.smtp.setFault({ mode: 'refuse' });
      const older = mailRequest();
      const newer = mailRequest({ user_id: older.user_id, to: older.to });
      await h.produce([older]);
      await h.waitForStatus(older.request_id, 'deferred');
      await h.produce([newer]);

      const superseded = await h.waitForStatus(older.request_id, 'failed');
      expect(superseded.error_class).toBeNull();
      await h.smtp.setFault({ mode: 'healthy' });
      await h.waitForStatus(newer.request_id, 'sent');

      const mails = h.smtp.messages.filter((m) => m.to.includes(older.to));
      expect(mails).toHaveLength(1);
      expect(mails[0]?.text).toContain(newer.vars.code);
      expect(mails[0]?.text).not.toContain(older.vars.code);
      expect((await h.row(older.request_id))?.state).toBe('superseded');
      expect(h.dlqRecords().some((r) => r.request_id === older.request_id)).toBe(false);
      expect(h.statusesOf(older.request_id).some((s) => s.status === 'sent')).toBe(false);
    },
  );

  it('never writes the SMTP password into logs or status events', () => {
    expect(h.logs.length).toBeGreaterThan(0);
    expect(h.logs.join('\n')).not.toContain(AUTH.pass);
    expect(JSON.stringify(h.statuses())).not.toContain(AUTH.pass);
  });
});

describe('mailer: permanent failures', () => {
  let h: MailerHarness;

  beforeAll(async () => {
    h = await startMailerHarness({
      env: { BREAKER_VOLUME_THRESHOLD: '2', BREAKER_ERROR_THRESHOLD_PERCENT: '50', SMTP_POOL_SIZE: '1' },
    });
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.stop();
  });

  it(
    'when SMTP answers 550 for the recipient, then the request fails as rejected after one connection, with a ' +
      'DLQ record',
    async () => {
      const request = mailRequest({ to: 'nobody@example.test' });
      h.smtp.rejectRecipient(request.to);
      h.smtp.resetCounters();
      await h.produce([request]);

      const failed = await h.waitForStatus(request.request_id, 'failed');
      expect(failed).toMatchObject({ error_class: 'rejected', attempt: 1 });
      expect(h.statusesOf(request.request_id)).toHaveLength(1);
      expect(h.smtp.connectionCount()).toBe(1);
      const dlq = await waitFor(() => h.dlqRecords().find((r) => r.request_id === request.request_id), {
        message: 'DLQ record',
      });
      expect(dlq).toMatchObject({ reason: 'rejected', error_class: 'rejected', attempts: 1 });
      expect(JSON.parse(dlq.original_value ?? '{}')).toMatchObject({ payload: { request_id: request.request_id } });
      expect(await h.metric('mail_sent_total', { result: 'failed', error_class: 'rejected' })).toBe(1);
    },
  );

  it('when many recipients are rejected, then the breaker stays closed and good mail still goes out', async () => {
    const bad = Array.from({ length: 6 }, (_, i) => mailRequest({ to: `gone-${i}@example.test` }));
    for (const r of bad) h.smtp.rejectRecipient(r.to);
    await h.produce(bad);
    for (const r of bad) await h.waitForStatus(r.request_id, 'failed');

    expect(h.mailer?.circuitState()).toBe('closed');
    expect(await h.metric('mail_smtp_circuit_state')).toBe(0);
    const good = mailRequest();
    await h.produce([good]);
    await h.waitForStatus(good.request_id, 'sent');
  });
});

describe('mailer: retries exhausted', () => {
  let h: MailerHarness;

  beforeAll(async () => {
    h = await startMailerHarness({ env: { MAIL_MAX_ATTEMPTS: '3' } });
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.stop();
  });

  it('when SMTP refuses every attempt, then after MAIL_MAX_ATTEMPTS the request fails with a DLQ record', async () => {
    await h.smtp.setFault({ mode: 'refuse' });
    const request = mailRequest();
    await h.produce([request]);

    const failed = await h.waitForStatus(request.request_id, 'failed');
    expect(failed).toMatchObject({ error_class: 'connection', attempt: 3 });
    expect(h.statusesOf(request.request_id).map((s) => [s.status, s.attempt])).toEqual([
      ['deferred', 1],
      ['deferred', 2],
      ['failed', 3],
    ]);
    const dlq = await waitFor(() => h.dlqRecords().find((r) => r.request_id === request.request_id), {
      message: 'DLQ record',
    });
    expect(dlq).toMatchObject({ reason: 'retries_exhausted', error_class: 'connection', attempts: 3 });
    expect(await h.metric('mail_dlq_records_total', { reason: 'retries_exhausted' })).toBe(1);
    expect((await h.row(request.request_id))?.state).toBe('failed');

    await h.smtp.setFault({ mode: 'healthy' });
    const marker = mailRequest();
    await h.produce([marker]);
    await h.waitForStatus(marker.request_id, 'sent');
    expect(h.smtp.messages.some((m) => m.to.includes(request.to))).toBe(false);
  });
});
