import { Partitioners } from 'kafkajs';
import { createLogger } from '@shared/logger';
import { createTopic, testKafka, uniquePrefix } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { createMailRequestsConsumer } from '../src/entry-points/mail-requests-consumer';
import type { IncomingMessage } from '../src/domain/record-mail-requests';

const logger = createLogger({ service: 'mailer-test', level: 'silent' });

describe('mailer intake: the partitions of one fetch are recorded together', () => {
  it('when a burst spread over every partition is waiting, then record is called with several partitions at once', async () => {
    const topic = `${uniquePrefix('intake-group')}mail.requests`;
    await createTopic(topic, 3);
    const kafka = testKafka('intake-grouping');
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    // Waiting before the consumer starts, so its first fetches see all three partitions full.
    const keys = Array.from({ length: 60 }, (_, i) => `user-${i}`);
    await producer.send({ topic, messages: keys.map((key) => ({ key, value: `request of ${key}` })) });
    await producer.disconnect();

    const calls: IncomingMessage[][] = [];
    const consumer = createMailRequestsConsumer({
      kafka,
      groupId: `${topic}-group`,
      topic,
      partitions: 3,
      record: async (messages) => {
        calls.push(messages);
      },
      logger,
    });
    await consumer.start();
    try {
      await waitFor(() => calls.flat().length >= keys.length, { timeoutMs: 30_000, message: 'every message recorded' });
      expect(
        calls
          .flat()
          .map((m) => m.value?.toString())
          .sort(),
      ).toEqual(keys.map((k) => `request of ${k}`).sort());
      // Fewer calls than partitions' batches: at least one call carried more than one partition.
      expect(Math.max(...calls.map((c) => new Set(c.map((m) => m.partition)).size))).toBeGreaterThan(1);
    } finally {
      await consumer.stop();
    }
  });

  it('when recording the grouped batches fails, then each partition is recorded again on its own', async () => {
    const topic = `${uniquePrefix('intake-group-fail')}mail.requests`;
    await createTopic(topic, 3);
    const kafka = testKafka('intake-grouping-fail');
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    const keys = Array.from({ length: 30 }, (_, i) => `user-${i}`);
    await producer.send({ topic, messages: keys.map((key) => ({ key, value: key })) });
    await producer.disconnect();

    const recorded: IncomingMessage[][] = [];
    const consumer = createMailRequestsConsumer({
      kafka,
      groupId: `${topic}-group`,
      topic,
      partitions: 3,
      // Refuses any call spanning several partitions (as a batch whose write failed): each part alone succeeds.
      record: async (messages) => {
        if (new Set(messages.map((m) => m.partition)).size > 1) throw new Error('refused');
        recorded.push(messages);
      },
      logger,
    });
    await consumer.start();
    try {
      await waitFor(() => recorded.flat().length >= keys.length, {
        timeoutMs: 30_000,
        message: 'every message recorded',
      });
      expect(new Set(recorded.flat().map((m) => m.value?.toString()))).toEqual(new Set(keys));
    } finally {
      await consumer.stop();
    }
  });
});
