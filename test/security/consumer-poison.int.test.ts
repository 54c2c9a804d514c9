import { randomUUID } from 'node:crypto';
import type { Producer } from 'kafkajs';
import { buildEnvelope, EVENT_TYPE, envelopeHeaders } from '@shared/events';
import { createKafka } from '@shared/kafka';
import { topicNames } from '@shared/topics';
import { createTestDatabase, testBrokers, testKafka, uniquePrefix, type TestDatabase } from '../support/infra';
import { waitFor } from '../support/wait-for';
import { HUGE_POISON_BYTES, poisonValues } from '../support/fuzz';
import { createDeliveryStatusConsumer } from '../../services/accounts/src/entry-points/kafka/delivery-status-consumer';
import {
  metricValue,
  startTestAccounts,
  strongPassword,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';
import { sealTestCode } from '../support/payload-key';
import { mailRequest, startMailerHarness, type MailerHarness } from '../../services/mailer/test/support/mailer-harness';

describe('poison messages on the consumed topics are logged, counted, parked, and never stall a partition', () => {
  const seed = Date.now() % 2 ** 31;

  describe('accounts: mail.delivery-status consumer', () => {
    let db: TestDatabase;
    let accounts: TestAccounts;
    let consumer: ReturnType<typeof createDeliveryStatusConsumer>;
    let producer: Producer;
    const prefix = uniquePrefix('sec-ds');
    const topic = topicNames(prefix).mailDeliveryStatus;

    beforeAll(async () => {
      db = await createTestDatabase();
      accounts = startTestAccounts({
        databaseUrl: db.url,
        env: { KAFKA_BROKERS: testBrokers().join(','), KAFKA_TOPIC_PREFIX: prefix },
      });
      const kafka = createKafka({
        brokers: testBrokers(),
        clientId: 'accounts-poison-test',
        logger: accounts.deps.logger,
      });
      consumer = createDeliveryStatusConsumer({ ...accounts.deps, kafka, admin: kafka.admin(), topicPrefix: prefix });
      await consumer.start();
      producer = testKafka('poison-producer').producer();
      await producer.connect();
      await waitFor(() => consumer.isRunning(), {
        timeoutMs: 30_000,
        message: 'delivery-status consumer did not start',
      });
    });
    afterAll(async () => {
      await producer.disconnect();
      await consumer.stop();
      await accounts.close();
      await db.drop();
    });

    test(
      'when generated poison (not JSON, not UTF-8, missing and mistyped fields, NUL, 900 KB) precedes a valid ' +
        'status on its partition, each is parked once, counted, and the valid status is applied',
      async () => {
        const reg = await accounts.http
          .post('/api/v1/usr/register')
          .send({ email: uniqueEmail('poison'), password: strongPassword });
        expect(reg.status).toBe(201);
        const userId: string = reg.body.user_data.id;
        const requestId: string = reg.body.email_confirmation.request_id;
        const valid = buildEnvelope({
          id: randomUUID(),
          type: EVENT_TYPE.mailDeliveryStatus,
          aggregateType: 'user',
          aggregateId: userId,
          payload: { request_id: requestId, user_id: userId, status: 'sent', attempt: 1, error_class: null },
        });
        const poison = poisonValues(
          valid as unknown as Record<string, unknown>,
          {
            envelope: ['id', 'type', 'version', 'occurred_at', 'payload'],
            payload: ['request_id', 'user_id', 'status', 'attempt', 'error_class'],
          },
          seed,
        );
        const invalidBefore = await metricValue(accounts.registry, 'accounts_invalid_events_total', { topic });

        // One key: everything lands on the valid event's partition, in this order.
        const huge = poison.pop();
        await producer.send({ topic, messages: poison.map((value) => ({ key: userId, value })) });
        await producer.send({ topic, messages: [{ key: userId, value: huge ?? null }] });
        await producer.send({
          topic,
          messages: [{ key: userId, value: JSON.stringify(valid), headers: envelopeHeaders(valid) }],
        });

        await waitFor(
          async () =>
            (await db.pool.query(`SELECT status FROM mail_delivery_status WHERE request_id = $1`, [requestId])).rows[0]
              ?.status === 'sent',
          {
            timeoutMs: 30_000,
            message: `valid status after ${poison.length + 1} poison messages not applied (fast-check seed ${seed})`,
          },
        );
        const parked = await db.pool.query<{ partition: number; value_bytes: number; stored: number; error: string }>(
          `SELECT partition, value_bytes, coalesce(octet_length(value), 0) AS stored, error FROM accounts_poison_events WHERE topic = $1 ORDER BY "offset"`,
          [topic],
        );
        expect(parked.rows).toHaveLength(poison.length + 1);
        expect(new Set(parked.rows.map((r) => r.partition)).size).toBe(1);
        const largest = parked.rows.at(-1);
        console.log(
          `[poison] accounts consumer: ${poison.length + 1} poison messages parked (largest ${String(largest?.value_bytes)} bytes), valid status applied after them (seed ${seed})`,
        );
        expect(largest?.value_bytes).toBeGreaterThan(HUGE_POISON_BYTES);
        expect(largest?.stored).toBe(64 * 1024);
        expect(await metricValue(accounts.registry, 'accounts_invalid_events_total', { topic })).toBe(
          invalidBefore + poison.length + 1,
        );
      },
    );
  });

  describe('mailer: mail.requests consumer', () => {
    let h: MailerHarness;
    let producer: Producer;

    beforeAll(async () => {
      h = await startMailerHarness();
      await h.startInProcess();
      producer = testKafka('mailer-poison-producer').producer();
      await producer.connect();
    });
    afterAll(async () => {
      await producer.disconnect();
      await h.stop();
    });

    test(
      'when generated poison (including 900 KB) precedes a valid request on its partition, each gets a DLQ ' +
        'record, is counted, and the valid request is mailed',
      async () => {
        const plain = mailRequest();
        // As accounts sends it: the code sealed under the key the harness gives the mailer.
        const request = { ...plain, vars: { ...plain.vars, code: sealTestCode(plain.vars.code, plain.request_id) } };
        const valid = buildEnvelope({
          type: EVENT_TYPE.mailRequested,
          aggregateType: 'user',
          aggregateId: request.user_id,
          payload: request,
        });
        const poison = poisonValues(
          valid as unknown as Record<string, unknown>,
          {
            envelope: ['id', 'type', 'version', 'occurred_at', 'payload'],
            payload: ['request_id', 'user_id', 'to', 'template', 'vars'],
          },
          seed,
        );
        const invalidBefore = await h.metric('mail_invalid_requests_total');
        const dlqBefore = h.dlqRecords().filter((r) => r.reason === 'invalid_request').length;

        const huge = poison.pop();
        await producer.send({
          topic: h.topics.mailRequests,
          messages: poison.map((value) => ({ key: request.user_id, value })),
        });
        await producer.send({
          topic: h.topics.mailRequests,
          messages: [{ key: request.user_id, value: huge ?? null }],
        });
        await producer.send({
          topic: h.topics.mailRequests,
          messages: [{ key: request.user_id, value: JSON.stringify(valid), headers: envelopeHeaders(valid) }],
        });

        await h.waitForStatus(request.request_id, 'sent', 30_000);
        await waitFor(
          () => h.dlqRecords().filter((r) => r.reason === 'invalid_request').length >= dlqBefore + poison.length + 1,
          {
            timeoutMs: 30_000,
            message: `DLQ records for ${poison.length + 1} poison messages (fast-check seed ${seed})`,
          },
        );
        console.log(
          `[poison] mailer: ${poison.length + 1} poison messages dead-lettered, valid request mailed after them (seed ${seed})`,
        );
        expect(await h.metric('mail_invalid_requests_total')).toBe(invalidBefore + poison.length + 1);
        expect(h.smtp.messages.filter((m) => m.to.includes(request.to))).toHaveLength(1);
      },
    );
  });
});
