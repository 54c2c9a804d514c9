import { createTestDatabase, collectMessages, type TestDatabase } from '../support/infra';
import { waitFor } from '../support/wait-for';
import {
  codeOf,
  startTestAccounts,
  strongPassword,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';
import { startMailerHarness, type MailerHarness } from '../../services/mailer/test/support/mailer-harness';

/**
 * The confirmation code in transit: accounts seals it (AES-256-GCM, MAIL_PAYLOAD_KEY, key id in the
 * value) before it enters the outbox; the outbox row, `mail.requests` and the DLQ record carry the
 * sealed form only; the mailer opens it when it renders the mail.
 */
describe('confirmation codes are sealed from accounts to the mail', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;
  let h: MailerHarness;

  beforeAll(async () => {
    db = await createTestDatabase();
    accounts = startTestAccounts({ databaseUrl: db.url });
    h = await startMailerHarness({ env: { MAIL_MAX_ATTEMPTS: '1' } });
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.smtp.setFault({ mode: 'healthy' });
    await h.stop();
    await accounts.close();
    await db.drop();
  });

  /** Registers a user and returns the outbox's mail.requested envelope as the relay would publish it, plus the code. */
  const register = async () => {
    const res = await accounts.http
      .post('/api/v1/usr/register')
      .send({ email: uniqueEmail('sealed'), password: strongPassword, first_name: 'Ada' });
    expect(res.status).toBe(201);
    const requestId: string = res.body.email_confirmation.request_id;
    const { rows } = await db.pool.query(
      `SELECT payload, event_id, type, occurred_at, aggregate_type, key FROM outbox WHERE type = 'mail.requested' AND payload->>'request_id' = $1`,
      [requestId],
    );
    const row = rows[0];
    const envelope = {
      id: row.event_id,
      type: row.type,
      version: 1,
      occurred_at: new Date(row.occurred_at).toISOString(),
      aggregate_type: row.aggregate_type,
      aggregate_id: row.key,
      payload: row.payload,
    };
    return { requestId, envelope, row: JSON.stringify(rows[0]), code: await codeOf(db.pool, requestId) };
  };

  test(
    'the outbox row, the mail.requests record and the DLQ ' + 'record never hold the code in clear; the mail does',
    async () => {
      const collector = await collectMessages([h.topics.mailRequests]);
      try {
        const ok = await register();
        expect(ok.row).not.toContain(ok.code);
        expect(ok.envelope.payload.vars.code).toMatch(/^v1\.[0-9a-f]{8}\./);
        await h.produceRaw([JSON.stringify(ok.envelope)]);
        await h.waitForStatus(ok.requestId, 'sent');
        const mail = h.smtp.messages.find((m) => m.text.includes(ok.code));
        expect(mail?.text).toContain(ok.code);

        await h.smtp.setFault({ mode: 'refuse' });
        const failed = await register();
        await h.produceRaw([JSON.stringify(failed.envelope)]);
        await h.waitForStatus(failed.requestId, 'failed');
        const dlq = await waitFor(() => h.dlqRecords().find((r) => r.request_id === failed.requestId), {
          message: 'DLQ record',
        });
        expect(dlq.original_value).toContain(failed.requestId);
        expect(JSON.stringify(dlq)).not.toContain(failed.code);

        const onTopic = await collector.waitForMessages(2);
        const values = onTopic.map((m) => String(m.value)).join('\n');
        expect(values).toContain(ok.requestId);
        for (const code of [ok.code, failed.code]) expect(values).not.toContain(`"code":"${code}"`);
      } finally {
        await h.smtp.setFault({ mode: 'healthy' });
        await collector.stop();
      }
    },
  );

  test(
    'when the mailer lacks the key a code was sealed under, the request fails for good to the DLQ (still ' +
      'sealed) instead of mailing garbage',
    async () => {
      const other = startTestAccounts({
        databaseUrl: db.url,
        env: { MAIL_PAYLOAD_KEY: Buffer.alloc(32, 1).toString('base64') },
      });
      try {
        const res = await other.http
          .post('/api/v1/usr/register')
          .send({ email: uniqueEmail('otherkey'), password: strongPassword });
        const requestId: string = res.body.email_confirmation.request_id;
        const { rows } = await db.pool.query(
          `SELECT payload, event_id, key FROM outbox WHERE type = 'mail.requested' AND payload->>'request_id' = $1`,
          [requestId],
        );
        const envelope = {
          id: rows[0].event_id,
          type: 'mail.requested',
          version: 1,
          occurred_at: new Date().toISOString(),
          aggregate_type: 'user',
          aggregate_id: rows[0].key,
          payload: rows[0].payload,
        };
        await h.produceRaw([JSON.stringify(envelope)]);

        const status = await h.waitForStatus(requestId, 'failed');
        expect(status.error_class).toBe('unknown');
        const dlq = await waitFor(() => h.dlqRecords().find((r) => r.request_id === requestId), {
          message: 'DLQ record',
        });
        expect(dlq.error).toMatch(/unknown key id/);
        expect(h.smtp.messages.some((m) => m.to.includes(rows[0].payload.to))).toBe(false);
      } finally {
        await other.close();
      }
    },
  );
});
