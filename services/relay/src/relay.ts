import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { Pool } from '@shared/db';
import type { Logger } from '@shared/logger';
import { ensureTopics } from '@shared/kafka';
import { contractTopicConfigs } from '@shared/topics';
import { errorMessage } from '@shared/errors';
import { createIdempotentProducer } from '@shared/idempotent-producer';
import type { RelayConfig } from './config';
import { backoffDelay } from '@shared/backoff';
import { createWorkLoop, type WorkLoop } from '@shared/work-loop';
import { createPartitionCooldown } from './domain/partition-cooldown';
import { createRelayMetrics } from './metrics';
import { createRelayRound } from './domain/relay-round';
import { readBacklog } from './data-access/outbox-repository';
import { createOutboxListener } from './entry-points/outbox-listener';

export type RelayOptions = {
  pool: Pool;
  kafka: Kafka;
  logger: Logger;
  registry: Registry;
  config: Pick<
    RelayConfig,
    | 'DATABASE_URL'
    | 'KAFKA_TOPIC_PREFIX'
    | 'RELAY_POLL_INTERVAL_MS'
    | 'RELAY_BATCH_SIZE'
    | 'RELAY_CONCURRENCY'
    | 'KAFKA_TOPIC_PARTITIONS'
    | 'KAFKA_REPLICATION_FACTOR'
    | 'RELAY_RETRY_BASE_MS'
    | 'RELAY_RETRY_MAX_MS'
    | 'RELAY_GAUGE_INTERVAL_MS'
  >;
  /** Pause before looking again when a NOTIFY found nothing (the row may not be visible yet). */
  requeryDelayMs?: number;
};

export type Relay = { start: () => Promise<void>; stop: () => Promise<void> };

/**
 * Wiring of the outbox relay: RELAY_CONCURRENCY work loops (shared/src/work-loop.ts) run relay rounds
 * (domain/relay-round.ts) woken by NOTIFY on commit, with a poll as the fallback; all loops share one
 * idempotent producer keeper (shared/src/idempotent-producer.ts). `start` returns at once: connecting to
 * Kafka and creating the topics are retried with backoff in the background, so a relay started while
 * Kafka is down waits for it instead of crash-looping.
 */
export function createRelay(opts: RelayOptions): Relay {
  const { pool, kafka, config } = opts;
  const log = opts.logger.child({ component: 'relay' });
  const metrics = createRelayMetrics(opts.registry);
  const retryPolicy = { baseMs: config.RELAY_RETRY_BASE_MS, maxMs: config.RELAY_RETRY_MAX_MS, jitter: 'equal' } as const;
  const producer = createIdempotentProducer({ kafka, logger: log });
  const round = createRelayRound({
    pool,
    producer,
    cooldown: createPartitionCooldown(retryPolicy),
    metrics,
    logger: log,
    batchSize: config.RELAY_BATCH_SIZE,
    topicPrefix: config.KAFKA_TOPIC_PREFIX,
  });
  const listener = createOutboxListener({
    connectionString: config.DATABASE_URL,
    logger: opts.logger,
    onWake: () => loops.forEach((l) => l.wake()),
    retryBaseMs: config.RELAY_RETRY_BASE_MS,
    retryMaxMs: config.RELAY_RETRY_MAX_MS,
  });

  let running = false;
  let supervisor: Promise<void> | undefined;
  let gaugeTimer: NodeJS.Timeout | undefined;
  let stopSignal = (): void => undefined;
  let stopped = Promise.resolve();
  /** A pause that stop() cuts short. */
  const pause = async (ms: number): Promise<void> => {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))), stopped]);
    clearTimeout(timer);
  };

  /** Creates the contract topics and connects the producer, retrying until it works or we stop. */
  const connectKafka = async (): Promise<boolean> => {
    const admin = kafka.admin();
    const topics = contractTopicConfigs(config.KAFKA_TOPIC_PREFIX, { partitions: config.KAFKA_TOPIC_PARTITIONS, replicationFactor: config.KAFKA_REPLICATION_FACTOR });
    for (let attempt = 1; running; attempt++) {
      try {
        await admin.connect();
        await ensureTopics(admin, topics);
        await producer.connect();
        return true;
      } catch (err) {
        const delay = backoffDelay(attempt, retryPolicy);
        log.warn({ err: { message: errorMessage(err) }, retry_in_ms: delay }, 'Kafka not ready: retrying');
        await pause(delay);
      } finally {
        await admin.disconnect().catch(() => undefined);
      }
    }
    return false;
  };

  const refreshGauges = async (): Promise<void> => {
    try {
      const { backlog, oldestAgeSeconds } = await readBacklog(pool);
      metrics.backlog.set(backlog);
      metrics.oldestAge.set(oldestAgeSeconds);
    } catch (err) {
      log.debug({ err: { message: errorMessage(err) } }, 'could not refresh outbox gauges');
    }
  };

  /**
   * One work loop per RELAY_CONCURRENCY: a round again at once while rows were handled; after a wake-up
   * that found nothing, one more look shortly (a NOTIFY can beat the row's visibility to our snapshot,
   * docs/field-notes.md), then the poll interval; after a failure, the backoff (the rows stay pending).
   */
  const loops: { loop: WorkLoop; wake: () => void }[] = Array.from({ length: config.RELAY_CONCURRENCY }, (_, index) => {
    let requery = false;
    const loop = createWorkLoop({
      runOnce: async () => (await round()) > 0,
      idleMs: () => {
        if (!requery) return config.RELAY_POLL_INTERVAL_MS;
        requery = false;
        return opts.requeryDelayMs ?? 25;
      },
      backoff: retryPolicy,
      logger: log.child({ worker: index }),
      failureMessage: 'relay round failed: rows stay pending',
    });
    return {
      loop,
      wake: () => {
        requery = true;
        loop.kick();
      },
    };
  });

  return {
    start: async () => {
      if (running) return;
      running = true;
      stopped = new Promise<void>((resolve) => (stopSignal = resolve));
      await refreshGauges();
      gaugeTimer = setInterval(() => void refreshGauges(), config.RELAY_GAUGE_INTERVAL_MS);
      gaugeTimer.unref();
      supervisor = (async () => {
        if (!(await connectKafka())) return;
        await listener.start();
        log.info({ concurrency: config.RELAY_CONCURRENCY, batch_size: config.RELAY_BATCH_SIZE }, 'relay running');
        if (!running) return;
        await Promise.all(loops.map((l) => l.loop.start()));
      })();
    },
    /**
     * Lets each in-flight round finish (its rows are deleted) or fail (rolled back), then closes.
     * If the process is killed instead, the claim still cannot outlive it: the row locks belong to the
     * transaction, which PostgreSQL rolls back when the connection drops, so another relay takes over.
     */
    stop: async () => {
      if (!running) return;
      running = false;
      clearInterval(gaugeTimer);
      stopSignal();
      await supervisor;
      await Promise.all(loops.map((l) => l.loop.stop()));
      await listener.stop();
      await producer.disconnect().catch(() => undefined);
    },
  };
}
