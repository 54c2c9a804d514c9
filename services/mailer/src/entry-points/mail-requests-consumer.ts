import type { Consumer, Kafka } from 'kafkajs';
import { groupConcurrentCalls } from '@shared/group-concurrent-calls';
import { CONSUMER_TIMING } from '@shared/kafka';
import { createOffsetCommitter, type OffsetCommitter } from '@shared/offset-commits';
import type { Logger } from '@shared/logger';
import type { IncomingMessage } from '../domain/record-mail-requests';

export type MailRequestsConsumer = {
  start: () => Promise<void>;
  stop: () => Promise<void>;
  /** Stops fetching (the breaker opened): requests wait in Kafka, nothing is dropped. */
  pause: () => void;
  resume: () => void;
};

/**
 * The consumer group `<prefix>mailer` on mail.requests.
 *
 * Offset-commit rule: an offset is resolved (and so committed, within a second: shared/src/offset-commits.ts)
 * only after `record` resolved, i.e. after the batch's requests and DLQ records committed in PostgreSQL.
 * A crash before that commit redelivers the batch, and the inbox's primary key (request_id) turns the
 * redelivery into a no-op: at-least-once from Kafka, exactly-once into the inbox.
 *
 * The partitions of one fetch are handled side by side and their batches recorded together (one call
 * of `record`, so one intake statement or transaction per fetch instead of one per partition: a burst
 * spreads over every partition). If that call fails, each partition's batch is recorded again on its own
 * (shared/src/group-concurrent-calls.ts), so a failure stays with the batch that caused it.
 */
export function createMailRequestsConsumer(opts: {
  kafka: Kafka;
  groupId: string;
  topic: string;
  record: (messages: IncomingMessage[]) => Promise<void>;
  /** The topic's partitions: how many batches of one fetch are handled side by side (default 6). */
  partitions?: number;
  logger: Logger;
}): MailRequestsConsumer {
  const log = opts.logger.child({ component: 'mail-requests-consumer' });
  let consumer: Consumer | undefined;
  let committer: OffsetCommitter | undefined;
  let paused = false;
  const record = groupConcurrentCalls(async (messages: IncomingMessage[]) => {
    await opts.record(messages);
    return messages.map(() => true);
  });

  return {
    start: async () => {
      consumer = opts.kafka.consumer({ groupId: opts.groupId, allowAutoTopicCreation: false, ...CONSUMER_TIMING });
      const commits = createOffsetCommitter({ logger: log });
      committer = commits;
      await consumer.connect();
      await consumer.subscribe({ topics: [opts.topic], fromBeginning: true });
      await consumer.run({
        partitionsConsumedConcurrently: opts.partitions ?? 6,
        eachBatchAutoResolve: false,
        ...commits.runOptions,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
          if (!isRunning() || isStale() || batch.messages.length === 0) return;
          await record(
            batch.messages.map((m) => ({
              topic: batch.topic,
              partition: batch.partition,
              offset: m.offset,
              value: m.value,
            })),
          );
          for (const m of batch.messages) resolveOffset(m.offset);
          const last = batch.messages.at(-1);
          if (last) commits.resolved(batch.topic, batch.partition, last.offset);
          await heartbeat();
        },
      });
      commits.start(consumer);
      if (paused) consumer.pause([{ topic: opts.topic }]);
      log.info({ group_id: opts.groupId, topic: opts.topic }, 'consuming mail requests');
    },
    stop: async () => {
      await committer?.stop();
      committer = undefined;
      await consumer?.disconnect();
      consumer = undefined;
    },
    pause: () => {
      paused = true;
      consumer?.pause([{ topic: opts.topic }]);
      log.warn({ topic: opts.topic }, 'consumption paused');
    },
    resume: () => {
      if (!paused) return;
      paused = false;
      consumer?.resume([{ topic: opts.topic }]);
      log.info({ topic: opts.topic }, 'consumption resumed');
    },
  };
}
