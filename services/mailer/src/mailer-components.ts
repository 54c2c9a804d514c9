import type { Kafka } from 'kafkajs';
import { ensureTopics } from '@shared/kafka';
import type { Component } from '@shared/lifecycle';
import { contractTopicConfigs } from '@shared/topics';
import type { MailerConfig } from './config';
import type { Dispatcher } from './entry-points/dispatcher';
import type { MailRequestsConsumer } from './entry-points/mail-requests-consumer';
import type { RetentionJob } from './entry-points/retention-job';
import type { StatusPublisher } from './entry-points/status-publisher';

export type MailerComponents = { producer: Component; dispatcher: Component; consumer: Component };

/** Creates the contract's topics when missing (a fresh broker). */
async function ensureContractTopics(kafka: Kafka, config: MailerConfig): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(
      admin,
      contractTopicConfigs(config.KAFKA_TOPIC_PREFIX, {
        partitions: config.KAFKA_TOPIC_PARTITIONS,
        replicationFactor: config.KAFKA_REPLICATION_FACTOR,
      }),
    );
  } finally {
    await admin.disconnect();
  }
}

/**
 * The mailer's lifecycle components, in start order: producer (topics, then the status publisher),
 * dispatcher (with the retention job), consumer.
 */
export function mailerComponents(parts: {
  kafka: Kafka;
  config: MailerConfig;
  publisher: StatusPublisher;
  dispatcher: Dispatcher;
  retention: RetentionJob;
  consumer: MailRequestsConsumer;
}): MailerComponents {
  const { kafka, config, publisher, dispatcher, retention, consumer } = parts;
  return {
    producer: {
      name: 'producer',
      start: async () => {
        await ensureContractTopics(kafka, config);
        await publisher.connect();
        // Statuses left by a previous run (a crash, a Kafka outage) go out first.
        await publisher.start();
      },
      stop: async () => {
        await publisher.stop();
      },
    },
    dispatcher: {
      name: 'dispatcher',
      start: async () => {
        await dispatcher.start();
        await retention.start();
      },
      stop: async () => {
        await retention.stop();
        await dispatcher.stop();
      },
    },
    consumer: { name: 'consumer', start: () => consumer.start(), stop: () => consumer.stop() },
  };
}
