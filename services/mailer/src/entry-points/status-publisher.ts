import { createPacer } from '../domain/pace';
import { errorMessage } from '@shared/errors';
import { createWorkLoop } from '@shared/work-loop';
import type { IdempotentProducer } from '@shared/idempotent-producer';
import type { Logger } from '@shared/logger';
import type { TopicNames } from '@shared/topics';
import { TOPIC } from '@shared/topics';
import type { Pool } from '@shared/db';
import { publishOutboxBatch, type PublishResult, type StoredOutboxEvent } from '../data-access/mailer-outbox';

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
 * Publishes mailer_outbox (delivery statuses, DLQ records) with the shared idempotent producer keeper
 * and deletes only what the broker acknowledged. Woken after each recorded outcome, and sweeps every
 * `sweepMs` so leftovers of a crash or of a Kafka outage go out on their own.
 *
 * The keeper (shared/src/idempotent-producer.ts) sends one request per partition leader, tells each
 * partition's outcome apart, sends one request at a time per producer identity, and replaces its
 * producer (a new producer id) after ANY failed send, whatever the cause: kafkajs rolls back the
 * sequences of a failed request even where the broker appended it, so reusing that producer could get
 * later statuses acknowledged as duplicates and never appended. A failed partition's events stay
 * pending (from the first one not acknowledged); the others are deleted.
 */
export function createStatusPublisher(opts: {
  pool: Pool;
  producer: IdempotentProducer;
  topics: TopicNames;
  logger: Logger;
  sweepMs?: number;
  batchSize?: number;
  /** Least time between the starts of two publishing rounds (default 100 ms). */
  minIntervalMs?: number;
}): StatusPublisher {
  const log = opts.logger.child({ component: 'status-publisher' });
  const topicFor: Record<StoredOutboxEvent['topic'], string> = {
    [TOPIC.mailDeliveryStatus]: opts.topics.mailDeliveryStatus,
    [TOPIC.mailRequestsDlq]: opts.topics.mailRequestsDlq,
  };

  const publish = async (events: StoredOutboxEvent[]): Promise<PublishResult> => {
    const results = await opts.producer.sendPerPartition(events, (e) => ({
      topic: topicFor[e.topic],
      message: { key: e.key, value: e.value, headers: e.headers },
    }));
    const failed = results.find((r) => r.error !== undefined);
    return {
      acked: results.filter((r) => r.error === undefined).flatMap((r) => r.items),
      ...(failed ? { failure: failed.error } : {}),
    };
  };

  const batchSize = opts.batchSize ?? 500;
  // Batches until one comes back short: the table held no more when it was read, and whatever is
  // written after that kicks the loop again (so no extra empty pass per drain).
  const drain = async (): Promise<void> => {
    for (;;) {
      const n = await publishOutboxBatch(opts.pool, batchSize, publish);
      if (n < batchSize) return;
    }
  };
  // Under load, kicks come faster than drains: rounds start at most every minIntervalMs, so statuses
  // written meanwhile go out together (fewer, fuller produce requests); an idle publisher starts at once.
  const pace = createPacer(opts.minIntervalMs ?? 100);
  const pacedDrain = async (): Promise<void> => {
    await pace();
    await drain();
  };

  // Woken by kick() after each recorded outcome; sweeps every sweepMs; backs off while Kafka fails.
  const loop = createWorkLoop({
    runOnce: pacedDrain,
    idleMs: opts.sweepMs ?? 1_000,
    backoff: { baseMs: 200, maxMs: 5_000, jitter: 'equal' },
    logger: log,
    failureMessage: 'publishing delivery statuses failed; will retry',
  });

  return {
    start: () => loop.start(),
    stop: async () => {
      await loop.stop();
      // One last pass so statuses of the final in-flight sends leave before the producer disconnects.
      if (opts.producer.connected()) {
        await drain().catch((err: unknown) =>
          log.warn({ err: { message: errorMessage(err) } }, 'final publish failed; the next start republishes'),
        );
      }
      await opts.producer.disconnect();
    },
    kick: () => loop.kick(),
    drain,
    connect: () => opts.producer.connect(),
  };
}
