import { createKafka, ensureTopics } from '@shared/kafka';
import { createLogger } from '@shared/logger';
import { buildEnvelope, envelopeHeaders, parseEvent } from '@shared/events';
import { collectMessages, testBrokers, uniquePrefix } from '../support/infra';
import { randomUUID } from 'node:crypto';

describe('the real Kafka broker', () => {
  it('carries an envelope from an idempotent producer to a consumer group, key and headers intact', async () => {
    const logger = createLogger({ service: 'test', level: 'silent' });
    const kafka = createKafka({ brokers: testBrokers(), clientId: 'foundation-test', logger });
    const topic = `${uniquePrefix()}accounts.user-events`;
    const admin = kafka.admin();
    await admin.connect();
    await ensureTopics(admin, [{ topic, numPartitions: 3 }]);
    await ensureTopics(admin, [{ topic, numPartitions: 3 }]); // idempotent
    await admin.disconnect();

    const userId = randomUUID();
    const envelope = buildEnvelope({
      type: 'user.registered',
      aggregateType: 'user',
      aggregateId: userId,
      payload: {
        user_id: userId,
        email: 'a@example.test',
        first_name: 'Zoë',
        last_name: null,
        referral_code: 'ABCDEFGHJK',
        referred_by: null,
        registered_at: new Date().toISOString(),
      },
    });
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const collector = await collectMessages([topic]);
    try {
      await producer.send({
        topic,
        acks: -1,
        messages: [{ key: userId, value: JSON.stringify(envelope), headers: envelopeHeaders(envelope) }],
      });
      const [received] = await collector.waitForMessages(1);
      expect(received?.key).toBe(userId);
      expect(received?.headers).toEqual({ id: envelope.id, type: 'user.registered' });
      const parsed = parseEvent(received?.value ?? null, 'user.registered');
      expect(parsed.payload.first_name).toBe('Zoë');
      expect(parsed.id).toBe(envelope.id);
    } finally {
      await collector.stop();
      await producer.disconnect();
    }
  });
});
