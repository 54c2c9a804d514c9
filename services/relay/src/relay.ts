import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { Pool } from '@shared/db';
import type { Logger } from '@shared/logger';
import type { BackoffPolicy } from '@shared/backoff';
import { createIdempotentProducer } from '@shared/idempotent-producer';
import type { RelayConfig } from './config';
import { createPartitionCooldown } from './domain/partition-cooldown';
import { createRelayMetrics } from './metrics';
import { createRelayRound } from './domain/relay-round';
import { createOutboxListener } from './entry-points/outbox-listener';
import { createOutboxGauges } from './entry-points/outbox-gauges';
import { createRelayLoops } from './entry-points/relay-loops';
import { connectKafkaWithRetry } from './entry-points/kafka-readiness';

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

/** Backoff for Kafka start-up, a cooling-down partition and a failed round alike. */
function retryPolicyOf(config: Pick<RelayConfig, 'RELAY_RETRY_BASE_MS' | 'RELAY_RETRY_MAX_MS'>): BackoffPolicy {
  return { baseMs: config.RELAY_RETRY_BASE_MS, maxMs: config.RELAY_RETRY_MAX_MS, jitter: 'equal' };
}

/** Pauses that stop() cuts short: `arm` at start, `fire` at stop. */
function createStopSignal(): { arm: () => void; fire: () => void; pause: (ms: number) => Promise<void> } {
  let fire = (): void => undefined;
  let stopped = Promise.resolve();
  return {
    arm: () => {
      stopped = new Promise<void>((resolve) => (fire = resolve));
    },
    fire: () => fire(),
    pause: async (ms) => {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))), stopped]);
      clearTimeout(timer);
    },
  };
}

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
  const retryPolicy = retryPolicyOf(config);
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
  const loops = createRelayLoops({
    round,
    concurrency: config.RELAY_CONCURRENCY,
    batchSize: config.RELAY_BATCH_SIZE,
    pollIntervalMs: config.RELAY_POLL_INTERVAL_MS,
    requeryDelayMs: opts.requeryDelayMs ?? 25,
    backoff: retryPolicy,
    logger: log,
  });
  const listener = createOutboxListener({
    connectionString: config.DATABASE_URL,
    logger: opts.logger,
    onWake: () => loops.wake(),
    retryBaseMs: config.RELAY_RETRY_BASE_MS,
    retryMaxMs: config.RELAY_RETRY_MAX_MS,
  });
  const gauges = createOutboxGauges({ pool, metrics, logger: log, intervalMs: config.RELAY_GAUGE_INTERVAL_MS });

  let running = false;
  let supervisor: Promise<void> | undefined;
  const stopSignal = createStopSignal();
  /** Kafka (retried until it answers or we stop), then the LISTEN connection, then the loops. */
  const supervise = async (): Promise<void> => {
    const connected = await connectKafkaWithRetry({
      kafka,
      producer,
      config,
      retryPolicy,
      logger: log,
      isRunning: () => running,
      pause: stopSignal.pause,
    });
    if (!connected) return;
    await listener.start();
    log.info({ concurrency: config.RELAY_CONCURRENCY, batch_size: config.RELAY_BATCH_SIZE }, 'relay running');
    if (!running) return;
    await loops.start();
  };

  return {
    start: async () => {
      if (running) return;
      running = true;
      stopSignal.arm();
      await gauges.start();
      supervisor = supervise();
    },
    /**
     * Lets each in-flight round finish (its rows are deleted) or fail (rolled back), then closes.
     * If the process is killed instead, the claim still cannot outlive it: the row locks belong to the
     * transaction, which PostgreSQL rolls back when the connection drops, so another relay takes over.
     */
    stop: async () => {
      if (!running) return;
      running = false;
      gauges.stop();
      stopSignal.fire();
      await supervisor;
      await loops.stop();
      await listener.stop();
      await producer.disconnect().catch(() => undefined);
    },
  };
}
