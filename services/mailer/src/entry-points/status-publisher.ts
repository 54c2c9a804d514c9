import type { Producer } from 'kafkajs';
import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import type { TopicNames } from '@shared/topics';
import { TOPIC } from '@shared/topics';
import type { Pool } from '@shared/db';
import { publishOutboxBatch, type StoredOutboxEvent } from '../data-access/mailer-outbox';

export type StatusPublisher = { start: () => Promise<void>; stop: () => Promise<void>; kick: () => void; drain: () => Promise<void> };

/**
 * Publishes mailer_outbox (delivery statuses, DLQ records) with the idempotent producer and deletes
 * what the broker acknowledged. Woken after each recorded outcome, and sweeps every `sweepMs` so
 * leftovers of a crash or of a Kafka outage go out on their own.
 */
export function createStatusPublisher(opts: { pool: Pool; producer: Producer; topics: TopicNames; logger: Logger; sweepMs?: number; batchSize?: number }): StatusPublisher {
  const log = opts.logger.child({ component: 'status-publisher' });
  const topicFor: Record<StoredOutboxEvent['topic'], string> = {
    [TOPIC.mailDeliveryStatus]: opts.topics.mailDeliveryStatus,
    [TOPIC.mailRequestsDlq]: opts.topics.mailRequestsDlq,
  };
  let running = false;
  let wake: (() => void) | undefined;
  let kicked = false;
  let loop: Promise<void> | undefined;

  const publish = async (events: StoredOutboxEvent[]) => {
    const byTopic = new Map<string, StoredOutboxEvent[]>();
    for (const e of events) byTopic.set(e.topic, [...(byTopic.get(e.topic) ?? []), e]);
    await opts.producer.sendBatch({
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
      await drain().catch((err: unknown) => log.warn({ err: { message: errorMessage(err) } }, 'final publish failed; the next start republishes'));
    },
    kick: () => {
      kicked = true;
      wake?.();
    },
    drain,
  };
}
