import { mailRequest, startMailerHarness, type MailerHarness } from './support/mailer-harness';

/**
 * The one duplicate window SMTP itself leaves open: the server took the whole message but its 250
 * never arrived. The mailer cannot know; it retries, and counts the retry's success as a possible
 * duplicate so operators see it.
 */
describe('mailer: the SMTP server accepted a mail but its acknowledgement was lost', () => {
  let h: MailerHarness;

  beforeAll(async () => {
    h = await startMailerHarness();
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.stop();
  });

  it(
    'when the 250 after DATA is lost, then the retry is sent, the row is flagged and ' +
      'mail_duplicate_sends_total counts it',
    async () => {
      await h.smtp.setFault({ mode: 'lose-ack' });
      const request = mailRequest();
      await h.produce([request]);

      const deferred = await h.waitForStatus(request.request_id, 'deferred');
      expect(deferred.error_class).toBe('timeout');
      await h.smtp.setFault({ mode: 'healthy' });
      await h.waitForStatus(request.request_id, 'sent');

      const copies = h.smtp.messages.filter((m) => m.to.includes(request.to));
      expect(copies).toHaveLength(2);
      // Both copies carry the request's Message-ID: mail stores that fold duplicates show one.
      expect(copies.map((m) => m.messageId)).toEqual([
        expect.stringMatching(`^<${request.request_id}@`),
        copies[0]?.messageId,
      ]);
      expect(await h.row(request.request_id)).toMatchObject({ state: 'sent', possible_duplicate: true });
      expect(await h.metric('mail_duplicate_sends_total')).toBe(1);
    },
  );

  it('when the connection fails before the body went out, then the retry is not counted as a duplicate', async () => {
    await h.smtp.setFault({ mode: 'stall-ehlo' });
    const request = mailRequest();
    await h.produce([request]);
    await h.waitForStatus(request.request_id, 'deferred');
    await h.smtp.setFault({ mode: 'healthy' });
    await h.waitForStatus(request.request_id, 'sent');

    expect(h.smtp.messages.filter((m) => m.to.includes(request.to))).toHaveLength(1);
    expect(await h.row(request.request_id)).toMatchObject({ state: 'sent', possible_duplicate: false });
    expect(await h.metric('mail_duplicate_sends_total')).toBe(1);
  });
});
