import { Partitioners } from 'kafkajs';
import { createLogger } from '@shared/logger';
import { createTopic, testKafka, uniquePrefix } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { createMailRequestsConsumer, type MailRequestsConsumer } from '../src/entry-points/mail-requests-consumer';
import type { IncomingMessage } from '../src/domain/record-mail-requests';

const logger = createLogger({ service: 'mailer-test', level: 'silent' });

/**
 * A burst of `n` requests (one per user) produced to a new 3-partition topic BEFORE the consumer starts,
 * so its first fetches find every partition full; then a consumer of it that records through `record`.
 */
async function burstThenConsume(
  label: string,
  n: number,
  record: (messages: IncomingMessage[]) => Promise<void>,
): Promise<{ values: string[]; consumer: MailRequestsConsumer }> {
  const topic = `${uniquePrefix(label)}mail.requests`;
  await createTopic(topic, 3);
  const kafka = testKafka(label);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const values = Array.from({ length: n }, (_, i) => `request of user-${i}`);
  await producer.send({ topic, messages: values.map((value, i) => ({ key: `user-${i}`, value })) });
  await producer.disconnect();
  const consumer = createMailRequestsConsumer({
    kafka,
    groupId: `${topic}-group`,
    topic,
    partitions: 3,
    record,
    logger,
  });
  await consumer.start();
  return { values, consumer };
}

const valuesOf = (calls: IncomingMessage[][]) => calls.flat().map((m) => m.value?.toString() ?? '');

describe('mailer intake: the partitions of one fetch are recorded together', () => {
  it('when a burst spread over every partition is waiting, then record is called with several partitions at once', async () => {
    const calls: IncomingMessage[][] = [];
    const { values, consumer } = await burstThenConsume('intake-group', 60, async (messages) => {
      calls.push(messages);
    });
    try {
      // At least once: a message fetched again before the first offset commit (a rebalance as the group
      // forms) may be recorded twice; the real intake drops the copy by request id.
      await waitFor(() => new Set(valuesOf(calls)).size >= values.length, {
        timeoutMs: 30_000,
        message: 'every message recorded',
      });
      expect(new Set(valuesOf(calls))).toEqual(new Set(values));
      // At least one call carried more than one partition: fewer calls than partitions' batches.
      expect(Math.max(...calls.map((c) => new Set(c.map((m) => m.partition)).size))).toBeGreaterThan(1);
    } finally {
      await consumer.stop();
    }
  });

  it('when recording the grouped batches fails, then each partition is recorded again on its own', async () => {
    const recorded: IncomingMessage[][] = [];
    // Refuses any call spanning several partitions (as a batch whose write failed): each part alone succeeds.
    const { values, consumer } = await burstThenConsume('intake-group-fail', 30, async (messages) => {
      if (new Set(messages.map((m) => m.partition)).size > 1) throw new Error('refused');
      recorded.push(messages);
    });
    try {
      await waitFor(() => recorded.flat().length >= values.length, {
        timeoutMs: 30_000,
        message: 'every message recorded',
      });
      expect(new Set(valuesOf(recorded))).toEqual(new Set(values));
    } finally {
      await consumer.stop();
    }
  });
});
