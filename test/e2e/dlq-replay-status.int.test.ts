import { createKafka } from '@shared/kafka';
import { replayDlq } from '../../scripts/replay-dlq';
import { createDeliveryStatusConsumer } from '../../services/accounts/src/entry-points/kafka/delivery-status-consumer';
import {
  codeOf,
  startTestAccounts,
  strongPassword,
  uniqueEmail,
} from '../../services/accounts/test/support/accounts-app';
import { mailRequest, startMailerHarness, type MailerHarness } from '../../services/mailer/test/support/mailer-harness';
import { createTestDatabase, testBrokers, testKafka, type TestDatabase } from '../support/infra';
import { waitFor } from '../support/wait-for';

/**
 * A DLQ replay as the user sees it: accounts' /email/status says `failed` after the retries ran out and
 * `sent` once the replayed request went out. The replay starts the attempts over (1), so the status
 * events carry a replay generation that accounts orders before the attempt.
 */
describe('DLQ replay seen through accounts', () => {
  let h: MailerHarness;
  let accountsDb: TestDatabase;

  beforeAll(async () => {
    h = await startMailerHarness({ env: { MAIL_MAX_ATTEMPTS: '2' } });
    await h.startInProcess();
    accountsDb = await createTestDatabase();
  });
  afterAll(async () => {
    await h.stop();
    await accountsDb.drop();
  });

  it("when a request failed and is replayed from the DLQ, accounts' /email/status ends sent (the replay generation orders it after the failed attempt)", async () => {
    // Accounts on its own database and the mailer's topics: it registers the user and consumes the statuses.
    const accounts = startTestAccounts({
      databaseUrl: accountsDb.url,
      env: { KAFKA_BROKERS: testBrokers().join(','), KAFKA_TOPIC_PREFIX: h.env.KAFKA_TOPIC_PREFIX ?? '' },
    });
    const kafka = createKafka({ brokers: testBrokers(), clientId: 'accounts-test', logger: accounts.deps.logger });
    const consumer = createDeliveryStatusConsumer({
      ...accounts.deps,
      kafka,
      admin: kafka.admin(),
      topicPrefix: h.env.KAFKA_TOPIC_PREFIX ?? '',
    });
    const started = new Date();
    try {
      await consumer.start();
      await waitFor(() => consumer.isRunning(), {
        timeoutMs: 30_000,
        message: 'delivery-status consumer did not start',
      });
      const email = uniqueEmail('replayed');
      const registered = await accounts.http.post('/api/v1/usr/register').send({ email, password: strongPassword });
      expect(registered.status).toBe(201);
      const token = registered.body.access_token as string;
      const requestId = registered.body.email_confirmation.request_id as string;
      const status = async () =>
        (await accounts.http.get('/api/v1/usr/email/status').set('Authorization', `Bearer ${token}`)).body.last_request;

      // No relay here: the test publishes the request the relay would, with the code from the outbox.
      await h.smtp.setFault({ mode: 'refuse' });
      const request = mailRequest({
        request_id: requestId,
        user_id: registered.body.user_data.id,
        to: email,
        vars: { code: await codeOf(accounts.pool, requestId) },
      });
      await h.produce([request]);
      const failed = await waitFor(async () => ((await status())?.status === 'failed' ? status() : undefined), {
        timeoutMs: 30_000,
        message: 'failed in /email/status',
      });
      expect(failed).toMatchObject({ request_id: requestId, status: 'failed', attempts: 2 });

      await h.smtp.setFault({ mode: 'healthy' });
      const from = { time: started };
      const summary = await replayDlq({
        kafka: testKafka('replay'),
        topicPrefix: h.env.KAFKA_TOPIC_PREFIX,
        from,
        dryRun: false,
        idleMs: 3_000,
        log: () => undefined,
      });
      expect(summary).toMatchObject({ replayed: 1 });

      const sent = await waitFor(async () => ((await status())?.status === 'sent' ? status() : undefined), {
        timeoutMs: 30_000,
        message: 'sent in /email/status after the replay',
      }).catch(async (err: unknown) => {
        const row = (
          await accountsDb.pool.query('SELECT * FROM mail_delivery_status WHERE request_id = $1', [requestId])
        ).rows;
        const events = h.statusesOf(requestId);
        console.log(JSON.stringify({ now: await status(), row, events }));
        throw err;
      });
      expect(sent).toMatchObject({ request_id: requestId, status: 'sent', attempts: 1, error_class: null });
      expect(h.smtp.messages.filter((m) => m.to.includes(email))).toHaveLength(1);
      expect(h.statusesOf(requestId).filter((s) => s.status === 'sent')).toEqual([
        expect.objectContaining({ generation: 1, attempt: 1 }),
      ]);
    } finally {
      await h.smtp.setFault({ mode: 'healthy' });
      await consumer.stop();
      await accounts.close();
    }
  });
});
