import type { Kafka } from 'kafkajs';
import type { BackoffPolicy } from '@shared/backoff';
import { backoffDelay } from '@shared/backoff';
import { errorMessage } from '@shared/errors';
import type { IdempotentProducer } from '@shared/idempotent-producer';
import { ensureTopics } from '@shared/kafka';
import type { Logger } from '@shared/logger';
import { contractTopicConfigs } from '@shared/topics';
import type { RelayConfig } from '../config';

/**
 * Creates the contract topics (when missing) and connects the producer, retrying with backoff until it
 * works (true) or `isRunning` turns false (false). `pause` is a wait that stopping cuts short, so a relay
 * started while Kafka is down waits for it instead of crash-looping, and still stops at once.
 */
export async function connectKafkaWithRetry(opts: {
  kafka: Kafka;
  producer: Pick<IdempotentProducer, 'connect'>;
  config: Pick<RelayConfig, 'KAFKA_TOPIC_PREFIX' | 'KAFKA_TOPIC_PARTITIONS' | 'KAFKA_REPLICATION_FACTOR'>;
  retryPolicy: BackoffPolicy;
  logger: Logger;
  isRunning: () => boolean;
  pause: (ms: number) => Promise<void>;
}): Promise<boolean> {
  const admin = opts.kafka.admin();
  const topics = contractTopicConfigs(opts.config.KAFKA_TOPIC_PREFIX, {
    partitions: opts.config.KAFKA_TOPIC_PARTITIONS,
    replicationFactor: opts.config.KAFKA_REPLICATION_FACTOR,
  });
  for (let attempt = 1; opts.isRunning(); attempt++) {
    try {
      await admin.connect();
      await ensureTopics(admin, topics);
      await opts.producer.connect();
      return true;
    } catch (err) {
      const delay = backoffDelay(attempt, opts.retryPolicy);
      opts.logger.warn({ err: { message: errorMessage(err) }, retry_in_ms: delay }, 'Kafka not ready: retrying');
      await opts.pause(delay);
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
  }
  return false;
}
