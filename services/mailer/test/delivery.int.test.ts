import { waitFor } from '../../../test/support/wait-for';
import { mailRequest, startMailerHarness, type MailerHarness } from './support/mailer-harness';

// The 1,000 runs in well under a minute here; MAILER_TEST_REQUESTS shrinks it for quick runs.
const REQUESTS = Number(process.env.MAILER_TEST_REQUESTS ?? 1000);

describe('mailer: delivering mail requests through a healthy SMTP server', () => {
  let h: MailerHarness;

  beforeAll(async () => {
    // A healthy server: every mail must go out on attempt 1. The harness's 300 ms SMTP timeout (made for the
    // failure tests) is missed on a loaded 2-core machine — the SMTP test server shares this event loop with
    // 1,000 sends — and turns a slow greeting into a `timeout` deferral; this file uses the default 10 s.
    h = await startMailerHarness({ env: { SMTP_POOL_SIZE: '5', SMTP_TIMEOUT_MS: '10000' } });
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.stop();
  });

  it(`when ${REQUESTS} requests arrive, then each is mailed once with its own code and reported sent`, async () => {
    const requests = Array.from({ length: REQUESTS }, () => mailRequest());
    for (let i = 0; i < requests.length; i += 100) await h.produce(requests.slice(i, i + 100));

    await waitFor(() => h.statuses().filter((s) => s.status === 'sent').length >= REQUESTS, {
      timeoutMs: 90_000,
      message: `sent statuses (have ${h.statuses().length}, smtp got ${h.smtp.messages.length})`,
    });
    expect(h.smtp.messages).toHaveLength(REQUESTS);
    const byRecipient = new Map(h.smtp.messages.map((m) => [m.to.join(','), m]));
    for (const r of requests) {
      const mail = byRecipient.get(r.to);
      expect(mail?.text).toContain(r.vars.code);
      // Named after its request: a copy sent again after a lost answer carries the same Message-ID.
      expect(mail?.messageId).toMatch(new RegExp(`^<${r.request_id}@`));
      const statuses = h.statusesOf(r.request_id);
      expect(statuses).toEqual([
        expect.objectContaining({
          status: 'sent',
          attempt: 1,
          error_class: null,
          user_id: r.user_id,
          smtp_message_id: mail?.messageId,
        }),
      ]);
    }
    expect(await h.metric('mail_sent_total', { result: 'sent', error_class: 'none' })).toBe(REQUESTS);
    // One end-to-end observation per mail (the histogram's _count), not merely "the metric exists".
    const endToEnd = (await h.registry.getSingleMetric('mail_end_to_end_seconds')?.get())?.values ?? [];
    expect(
      endToEnd.find((v) => (v as { metricName?: string }).metricName === 'mail_end_to_end_seconds_count')?.value,
    ).toBe(REQUESTS);
  });

  it('when a request is redelivered, then it is not sent twice', async () => {
    const request = mailRequest();
    await h.produce([request]);
    await h.waitForStatus(request.request_id, 'sent');
    const before = h.smtp.messages.length;

    await h.produce([request, request]);
    const marker = mailRequest();
    await h.produce([marker]);
    await h.waitForStatus(marker.request_id, 'sent');

    expect(h.smtp.messages.length).toBe(before + 1);
    expect(h.smtp.messages.filter((m) => m.to.includes(request.to))).toHaveLength(1);
    expect(h.statusesOf(request.request_id)).toHaveLength(1);
  });

  it(
    'when a name carries CR/LF and markup, then the mail has one recipient, no injected header and the name ' +
      'escaped in HTML',
    async () => {
      const request = mailRequest({ vars: { first_name: 'Eve\r\nBcc: x@evil.test <b>', last_name: null } });
      await h.produce([request]);
      await h.waitForStatus(request.request_id, 'sent');

      const mail = h.smtp.messages.find((m) => m.to.includes(request.to));
      expect(mail?.to).toEqual([request.to]);
      expect(mail?.headers.has('bcc')).toBe(false);
      expect(mail?.raw).not.toMatch(/^Bcc:/im);
      expect(mail?.html).toContain('Eve Bcc: x@evil.test &lt;b&gt;');
      expect(mail?.html).not.toContain('<b>');
      expect(mail?.subject).toBe('Confirm your email address');
    },
  );

  it('when names are UTF-8, then the body shows them intact (the subject never carries names)', async () => {
    const request = mailRequest({ vars: { first_name: 'Zoë', last_name: 'Łódź 山田' } });
    await h.produce([request]);
    await h.waitForStatus(request.request_id, 'sent');

    const mail = h.smtp.messages.find((m) => m.to.includes(request.to));
    expect(mail?.subject).toBe('Confirm your email address');
    expect(mail?.text).toContain('Hello Zoë Łódź 山田,');
    expect(mail?.html).toContain('Zoë Łódź 山田');
  });

  it(
    'when the address would add a header or a recipient, then the request fails as rejected without any SMTP ' +
      'connection',
    async () => {
      const request = mailRequest({ to: 'victim@example.test\r\nBcc: x@evil.test' });
      h.smtp.resetCounters();
      await h.produce([request]);

      const failed = await h.waitForStatus(request.request_id, 'failed');
      expect(failed).toMatchObject({ error_class: 'rejected', attempt: 1 });
      await waitFor(() => h.dlqRecords().find((r) => r.request_id === request.request_id), { message: 'DLQ record' });
      expect(h.smtp.connectionCount()).toBe(0);
      expect(h.smtp.messages.some((m) => m.to.includes('x@evil.test'))).toBe(false);
    },
  );

  it(
    'when poison messages arrive, then they are counted and parked on the DLQ and the next request is still ' +
      'delivered',
    async () => {
      const invalidBefore = await h.metric('mail_invalid_requests_total');
      const huge = JSON.stringify({ padding: 'x'.repeat(200 * 1024) });
      const wrongSchema = JSON.stringify({ id: 'not-a-uuid', type: 'mail.requested' });
      await h.produceRaw(['not json {', wrongSchema, huge, null, Buffer.from([0xff, 0x00, 0xfe])]);
      const after = mailRequest();
      await h.produce([after]);

      await h.waitForStatus(after.request_id, 'sent');
      await waitFor(() => h.dlqRecords().filter((r) => r.reason === 'invalid_request').length >= 5, {
        message: 'five poison DLQ records',
      });
      const poison = h.dlqRecords().filter((r) => r.reason === 'invalid_request');
      expect(poison.map((r) => r.original_value)).toEqual(expect.arrayContaining(['not json {', wrongSchema]));
      expect(poison.some((r) => r.original_value_base64 === Buffer.from([0xff, 0x00, 0xfe]).toString('base64'))).toBe(
        true,
      );
      expect(await h.metric('mail_invalid_requests_total')).toBe(invalidBefore + 5);
      expect(await h.metric('mail_dlq_records_total', { reason: 'invalid_request' })).toBeGreaterThanOrEqual(5);
    },
  );

  it('never writes a confirmation code into the logs', () => {
    const codes = h.smtp.messages
      .map((m) => /\b(\d{6})\b/.exec(m.text)?.[1])
      .filter((c): c is string => c !== undefined);
    expect(codes.length).toBeGreaterThan(0);
    const logText = h.logs.join('\n');
    for (const code of codes.slice(0, 50)) expect(logText).not.toContain(`"${code}"`);
    expect(logText).not.toMatch(/"code":"\d{6}"/);
  });
});
