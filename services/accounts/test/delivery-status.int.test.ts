import { randomUUID } from 'node:crypto';
import type { Producer } from 'kafkajs';
import { buildEnvelope, EVENT_TYPE, envelopeHeaders, type MailDeliveryStatusPayload } from '@shared/events';
import { createKafka } from '@shared/kafka';
import { topicNames } from '@shared/topics';
import { testBrokers, testKafka, uniquePrefix } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { createDeliveryStatusConsumer } from '../src/entry-points/kafka/delivery-status-consumer';
import {
  anonymousResendSettled,
  metricValue,
  strongPassword,
  uniqueEmail,
  withTestAccounts,
} from './support/accounts-app';

describe('mail.delivery-status consumer: what /email/status and /email/resend answer', () => {
  let consumer: ReturnType<typeof createDeliveryStatusConsumer>;
  let producer: Producer;
  const prefix = uniquePrefix('acc-ds');
  const topic = topicNames(prefix).mailDeliveryStatus;

  // Declared before withTestAccounts: afterAll hooks run in declaration order, and the consumer must
  // stop before the accounts pool closes.
  afterAll(async () => {
    await producer.disconnect();
    await consumer.stop();
  });
  const { db, accounts } = withTestAccounts({
    env: { KAFKA_BROKERS: testBrokers().join(','), KAFKA_TOPIC_PREFIX: prefix, RESEND_COOLDOWN_S: '600' },
  });

  beforeAll(async () => {
    const kafka = createKafka({ brokers: testBrokers(), clientId: 'accounts-test', logger: accounts.deps.logger });
    consumer = createDeliveryStatusConsumer({ ...accounts.deps, kafka, admin: kafka.admin(), topicPrefix: prefix });
    await consumer.start();
    producer = testKafka('ds-producer').producer();
    await producer.connect();
    await waitFor(() => consumer.isRunning(), { timeoutMs: 30_000, message: 'delivery-status consumer did not start' });
  });

  type User = { token: string; userId: string; requestId: string };
  const registerUser = async (): Promise<User> => {
    const res = await accounts.http
      .post('/api/v1/usr/register')
      .send({ email: uniqueEmail('ds'), password: strongPassword });
    expect(res.status).toBe(201);
    return {
      token: res.body.access_token,
      userId: res.body.user_data.id,
      requestId: res.body.email_confirmation.request_id,
    };
  };
  const statusOf = async (u: User) =>
    (await accounts.http.get('/api/v1/usr/email/status').set('Authorization', `Bearer ${u.token}`)).body;

  const event = (u: User, p: Partial<MailDeliveryStatusPayload>, id = randomUUID()) =>
    buildEnvelope({
      id,
      type: EVENT_TYPE.mailDeliveryStatus,
      aggregateType: 'user',
      aggregateId: u.userId,
      payload: { request_id: u.requestId, user_id: u.userId, status: 'sent', attempt: 1, error_class: null, ...p },
    });
  const produce = async (u: User, values: (ReturnType<typeof event> | string)[]) => {
    await producer.send({
      topic,
      messages: values.map((v) => ({
        key: u.userId,
        value: typeof v === 'string' ? v : JSON.stringify(v),
        headers: typeof v === 'string' ? {} : envelopeHeaders(v),
      })),
    });
  };
  /** Same key, so same partition: once the marker's row exists, every earlier message was handled. */
  const produceThenMarker = async (u: User, values: (ReturnType<typeof event> | string)[]) => {
    const marker = { ...u, requestId: randomUUID() };
    await produce(u, [...values, event(marker, { status: 'queued', attempt: 0 })]);
    await waitFor(
      async () =>
        (await db.pool.query('SELECT 1 FROM mail_delivery_status WHERE request_id = $1', [marker.requestId])).rowCount,
      {
        timeoutMs: 30_000,
        message: 'marker event not consumed',
      },
    );
  };

  test(
    'when an event is valid by its schema but refused by PostgreSQL (attempt beyond integer range), it is ' +
      'parked and the partition moves on',
    async () => {
      const user = await registerUser();
      const huge = event(user, { status: 'deferred', attempt: 2 ** 40, error_class: 'timeout' });

      await produceThenMarker(user, [huge, event(user, { status: 'sent', attempt: 1 })]);

      const parked = await db.pool.query('SELECT error FROM accounts_poison_events WHERE value LIKE $1', [
        `%${huge.id}%`,
      ]);
      expect(parked.rows[0]?.error).toMatch(/rejected by PostgreSQL/);
      expect((await statusOf(user)).last_request).toMatchObject({ status: 'sent' });
    },
  );

  test('when a sent status arrives, /email/status reports it', async () => {
    const user = await registerUser();

    await produce(user, [event(user, { status: 'sent', attempt: 1, smtp_message_id: '<m1@x>' })]);

    const body = await waitFor(
      async () => {
        const s = await statusOf(user);
        return s.last_request?.status === 'sent' ? s : null;
      },
      { timeoutMs: 30_000, message: 'status never became sent' },
    );
    expect(body).toMatchObject({
      email_confirmed: false,
      last_request: { request_id: user.requestId, status: 'sent', attempts: 1, error_class: null },
      can_resend: false,
    });
  });

  test(
    'when duplicates and older statuses arrive after a final one, the final status stays and duplicates are ' +
      'counted once',
    async () => {
      const user = await registerUser();
      const deferred1 = event(user, { status: 'deferred', attempt: 1, error_class: 'timeout' });
      const sent2 = event(user, { status: 'sent', attempt: 2 });
      const before = await metricValue(accounts.registry, 'mail_delivery_status_total', {
        status: 'deferred',
        error_class: 'timeout',
      });

      await produceThenMarker(user, [
        deferred1,
        sent2,
        deferred1,
        event(user, { status: 'deferred', attempt: 3, error_class: 'connection' }),
        sent2,
        event(user, { status: 'queued', attempt: 0 }),
      ]);

      const row = await db.pool.query(
        'SELECT status, attempt, error_class, last_event_id FROM mail_delivery_status WHERE request_id = $1',
        [user.requestId],
      );
      expect(row.rows[0]).toEqual({ status: 'sent', attempt: 2, error_class: null, last_event_id: sent2.id });
      expect(
        await metricValue(accounts.registry, 'mail_delivery_status_total', {
          status: 'deferred',
          error_class: 'timeout',
        }),
      ).toBe(before + 1);
      const processed = await db.pool.query(
        `SELECT count(*)::int AS n FROM processed_events WHERE consumer = 'accounts.delivery-status' AND event_id = ANY($1)`,
        [[deferred1.id, sent2.id]],
      );
      expect(processed.rows[0].n).toBe(2);
    },
  );

  test('when deferred attempts arrive out of order, the higher attempt wins', async () => {
    const user = await registerUser();

    await produceThenMarker(user, [
      event(user, { status: 'deferred', attempt: 3, error_class: 'circuit_open' }),
      event(user, { status: 'deferred', attempt: 2, error_class: 'timeout' }),
    ]);

    const body = await statusOf(user);
    expect(body.last_request).toMatchObject({ status: 'deferred', attempts: 3, error_class: 'circuit_open' });
  });

  test(
    'when the last status is failed, the resend cooldown is lifted: status says can_resend and resend answers ' + '202',
    async () => {
      const user = await registerUser();
      const blocked = await accounts.http.post('/api/v1/usr/email/resend').set('Authorization', `Bearer ${user.token}`);
      expect(blocked.status).toBe(429);

      await produceThenMarker(user, [event(user, { status: 'failed', attempt: 8, error_class: 'rejected' })]);
      const status = await statusOf(user);
      const resend = await accounts.http.post('/api/v1/usr/email/resend').set('Authorization', `Bearer ${user.token}`);

      expect(status).toMatchObject({
        last_request: { status: 'failed', error_class: 'rejected' },
        can_resend: true,
        retry_after_s: 0,
      });
      expect(resend.status).toBe(202);
    },
  );

  test('when the last status is deferred, the anonymous resend queues a mail inside the cooldown', async () => {
    const email = uniqueEmail('ds-anon');
    const reg = await accounts.http.post('/api/v1/usr/register').send({ email, password: strongPassword });
    const user: User = {
      token: reg.body.access_token,
      userId: reg.body.user_data.id,
      requestId: reg.body.email_confirmation.request_id,
    };

    await produceThenMarker(user, [event(user, { status: 'deferred', attempt: 1, error_class: 'connection' })]);
    const res = await anonymousResendSettled(accounts, { email });

    expect(res.status).toBe(202);
    const mails = await db.pool.query(
      `SELECT count(*)::int AS n FROM outbox WHERE type = 'mail.requested' AND key = $1`,
      [user.userId],
    );
    expect(mails.rows[0].n).toBe(2);
  });

  test(
    'when poison messages (not JSON, wrong schema, wrong type) precede a valid one, they are counted and ' +
      'skipped and the valid one is applied',
    async () => {
      const user = await registerUser();
      const before = await metricValue(accounts.registry, 'accounts_invalid_events_total', { topic });
      const wrongSchema = JSON.stringify({ ...event(user, {}), payload: { request_id: 'nope' } });
      const wrongType = JSON.stringify({ ...event(user, {}), type: 'user.registered' });

      await produce(user, ['{not json', wrongSchema, wrongType, event(user, { status: 'sent', attempt: 1 })]);

      await waitFor(async () => (await statusOf(user)).last_request?.status === 'sent', {
        timeoutMs: 30_000,
        message: 'valid event after poison not applied',
      });
      expect(await metricValue(accounts.registry, 'accounts_invalid_events_total', { topic })).toBe(before + 3);
    },
  );
});
