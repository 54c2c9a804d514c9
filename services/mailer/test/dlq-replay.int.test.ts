import { replayDlq } from '../../../scripts/replay-dlq';
import { testKafka } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { mailRequest, startMailerHarness, type MailerHarness } from './support/mailer-harness';

describe('mailer + scripts/replay-dlq.ts: a failed request replayed from the DLQ is sent', () => {
  let h: MailerHarness;

  beforeAll(async () => {
    h = await startMailerHarness({ env: { MAIL_MAX_ATTEMPTS: '2' } });
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.smtp.setFault({ mode: 'healthy' });
    await h.stop();
  });

  it("when retries are exhausted, the mailer's real DLQ record is replayed by the script and the mail goes out once with a sent status", async () => {
    await h.smtp.setFault({ mode: 'refuse' });
    const request = mailRequest();
    await h.produce([request]);
    await h.waitForStatus(request.request_id, 'failed');
    const dlq = await waitFor(() => h.dlqRecords().find((r) => r.request_id === request.request_id), {
      message: 'DLQ record',
    });
    // The DLQ record was built before the row turned failed: it carries the original — the code sealed, never in clear.
    expect(dlq.original_value).toContain(request.request_id);
    expect(dlq.original_value).not.toContain(request.vars.code);
    expect(dlq.original_value).toMatch(/"code":"v1\.[0-9a-f]{8}\./);
    // The row itself no longer holds the code.
    const { rows: failedRows } = await h.db.pool.query(
      `SELECT state, vars, original FROM mailer_requests WHERE request_id = $1`,
      [request.request_id],
    );
    expect(failedRows[0]).toMatchObject({ state: 'failed', original: '' });
    expect(failedRows[0].vars).not.toHaveProperty('code');

    await h.smtp.setFault({ mode: 'healthy' });
    const summary = await replayDlq({
      kafka: testKafka('replay'),
      topicPrefix: h.env.KAFKA_TOPIC_PREFIX,
      dryRun: false,
      idleMs: 3_000,
      log: () => undefined,
    });
    expect(summary).toMatchObject({ replayed: 1, invalid: 0 });

    await h.waitForStatus(request.request_id, 'sent');
    const mails = h.smtp.messages.filter((m) => m.to.includes(request.to));
    expect(mails).toHaveLength(1);
    expect(mails[0]?.text).toContain(request.vars.code);
    // A replay is a new delivery: its Message-ID names the replay, not the original's.
    expect(mails[0]?.messageId).toMatch(new RegExp(`^<${request.request_id}\\.1@`));
    expect(
      h
        .statusesOf(request.request_id)
        .map((s) => s.status)
        .slice(-1),
    ).toEqual(['sent']);
    const { rows } = await h.db.pool.query(
      `SELECT state, attempts, vars, original FROM mailer_requests WHERE request_id = $1`,
      [request.request_id],
    );
    expect(rows[0]).toMatchObject({ state: 'sent', attempts: 1, original: '' });
    expect(rows[0].vars).not.toHaveProperty('code');

    // Replaying again (the request is now sent) never sends a second mail.
    await replayDlq({
      kafka: testKafka('replay'),
      topicPrefix: h.env.KAFKA_TOPIC_PREFIX,
      dryRun: false,
      idleMs: 3_000,
      log: () => undefined,
    });
    // Same user, so the same partition: once the marker is sent, the replayed record before it was consumed.
    const marker = mailRequest({ user_id: request.user_id });
    await h.produce([marker]);
    await h.waitForStatus(marker.request_id, 'sent');
    expect(h.smtp.messages.filter((m) => m.to.includes(request.to))).toHaveLength(1);
    expect((await h.row(request.request_id))?.state).toBe('sent');
  });
});
