import type { Producer } from 'kafkajs';
import { errorMessage } from '@shared/errors';
import { classifyPublishError } from '@shared/kafka-errors';
import type { Logger } from '@shared/logger';
import type { TopicNames } from '@shared/topics';
import { TOPIC } from '@shared/topics';
import type { Pool } from '@shared/db';
import { publishOutboxBatch, type StoredOutboxEvent } from '../data-access/mailer-outbox';

export type StatusPublisher = {
  start: () => Promise<void>;
  /** Stops the loop, makes a last pass, and disconnects the producer. */
  stop: () => Promise<void>;
  kick: () => void;
  drain: () => Promise<void>;
  /** Connects the current producer (start-up); publishing also reconnects on its own. */
  connect: () => Promise<void>;
};

/**
 * Publishes mailer_outbox (delivery statuses, DLQ records) with the idempotent producer and deletes
 * what the broker acknowledged. Woken after each recorded outcome, and sweeps every `sweepMs` so
 * leftovers of a crash or of a Kafka outage go out on their own.
 *
 * It owns its producer: one that is not connected (the broker was down at start, or it dropped the
 * connection) is connected before publishing, and one whose idempotent state the broker no longer
 * accepts (UNKNOWN_PRODUCER_ID, OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH, e.g. after a
 * broker restart) is disconnected and replaced by a new one (a new producer id) for the next pass.
 */
export function createStatusPublisher(opts: {
  pool: Pool;
  createProducer: () => Producer;
  topics: TopicNames;
  logger: Logger;
  sweepMs?: number;
  batchSize?: number;
}): StatusPublisher {
  const log = opts.logger.child({ component: 'status-publisher' });
  const topicFor: Record<StoredOutboxEvent['topic'], string> = {
    [TOPIC.mailDeliveryStatus]: opts.topics.mailDeliveryStatus,
    [TOPIC.mailRequestsDlq]: opts.topics.mailRequestsDlq,
  };
  let running = false;
  let wake: (() => void) | undefined;
  let kicked = false;
  let loop: Promise<void> | undefined;

  type Current = { producer: Producer; connected: boolean };
  const track = (producer: Producer): Current => {
    const current: Current = { producer, connected: false };
    producer.on(producer.events.CONNECT, () => (current.connected = true));
    producer.on(producer.events.DISCONNECT, () => (current.connected = false));
    return current;
  };
  let current = track(opts.createProducer());

  const connect = async (): Promise<void> => {
    if (current.connected) return;
    await current.producer.connect();
    current.connected = true;
  };

  const replaceProducer = async (): Promise<void> => {
    const old = current;
    current = track(opts.createProducer());
    old.connected = false;
    await old.producer.disconnect().catch((err: unknown) => log.warn({ err: { message: errorMessage(err) } }, 'disconnecting the old producer failed'));
  };

  const publish = async (events: StoredOutboxEvent[]) => {
    const byTopic = new Map<string, StoredOutboxEvent[]>();
    for (const e of events) byTopic.set(e.topic, [...(byTopic.get(e.topic) ?? []), e]);
    await connect();
    const { producer } = current;
    try {
      await sendBatch(producer, byTopic);
    } catch (err) {
      if (classifyPublishError(err) === 'producer_state' && current.producer === producer) {
        log.warn({ err: { message: errorMessage(err) } }, 'the broker no longer accepts the producer\'s idempotent state: starting a new producer');
        await replaceProducer();
      }
      throw err;
    }
  };

  const sendBatch = async (producer: Producer, byTopic: Map<string, StoredOutboxEvent[]>) => {
    await producer.sendBatch({
      acks: -1,
      topicMessages: [...byTopic].map(([topic, list]) => ({
        topic: topicFor[topic as StoredOutboxEvent['topic']],
        messages: list.map((e) => ({ key: e.key, value: e.value, headers: e.headers })),
      })),
    });
  };

  const drain = async (): Promise<void> => {
    for (;;) {
      const n = await publishOutboxBatch(opts.pool, opts.batchSize ?? 500, publish);
      if (n <= 0) return;
    }
  };

  const run = async () => {
    while (running) {
      kicked = false;
      try {
        await drain();
      } catch (err) {
        log.warn({ err: { message: errorMessage(err) } }, 'publishing delivery statuses failed; will retry');
      }
      if (!running) return;
      if (kicked) continue;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, opts.sweepMs ?? 1_000);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  };

  return {
    start: async () => {
      running = true;
      loop = run();
    },
    stop: async () => {
      running = false;
      wake?.();
      await loop;
      // One last pass so statuses of the final in-flight sends leave before the producer disconnects.
      if (current.connected) {
        await drain().catch((err: unknown) => log.warn({ err: { message: errorMessage(err) } }, 'final publish failed; the next start republishes'));
      }
      await current.producer.disconnect();
      current.connected = false;
    },
    kick: () => {
      kicked = true;
      wake?.();
    },
    drain,
    connect,
  };
}
