import { Partitioners, type Kafka, type Producer } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { Pool } from '@shared/db';
import type { Logger } from '@shared/logger';
import { ensureTopics } from '@shared/kafka';
import { contractTopicConfigs } from '@shared/topics';
import { errorMessage } from '@shared/errors';
import type { RelayConfig } from './config';
import { backoffDelay } from '@shared/backoff';
import { publishBatch, type SendBatch } from './domain/publish-batch';
import { classifyPublishError } from '@shared/kafka-errors';
import { createRelayMetrics, topicLabel } from './metrics';
import { claimOutboxBatch, deletePublished, moveToDeadLetters, readBacklog } from './data-access/outbox-repository';
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
 * The outbox relay: claim pending rows, publish them, delete them once acknowledged. Woken by NOTIFY
 * on commit, with a poll as the fallback. `start` returns at once: connecting to Kafka and creating the
 * topics are retried with backoff in the background, so a relay started while Kafka is down waits for
 * it instead of crash-looping.
 */
export function createRelay(opts: RelayOptions): Relay {
  const { pool, kafka, config } = opts;
  const log = opts.logger.child({ component: 'relay' });
  const metrics = createRelayMetrics(opts.registry);
  const requeryDelayMs = opts.requeryDelayMs ?? 25;
  const wakeup = createWakeup();
  const retryPolicy = { baseMs: config.RELAY_RETRY_BASE_MS, maxMs: config.RELAY_RETRY_MAX_MS, jitter: 'equal' } as const;

  let running = false;
  let producer: Producer | undefined;
  let producerConnecting: Promise<Producer> | undefined;
  let supervisor: Promise<void> | undefined;
  let gaugeTimer: NodeJS.Timeout | undefined;

  const listener = createOutboxListener({
    connectionString: config.DATABASE_URL,
    logger: opts.logger,
    onWake: () => wakeup.notifyAll('notify'),
    retryBaseMs: config.RELAY_RETRY_BASE_MS,
    retryMaxMs: config.RELAY_RETRY_MAX_MS,
  });

  const newProducer = (): Producer =>
    // Idempotent (acks = all): a retried produce request is not appended twice. Ordering per key does
    // not rest on the producer though, but on the claim protocol (see claimOutboxBatch).
    kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });

  /**
   * Creates and connects a producer unless one is connected already (one attempt at a time, shared by
   * the loops). A producer whose connect failed is disconnected (kafkajs may hold half-open sockets)
   * and the error goes to the caller, whose loop backs off and asks again on its next round.
   */
  const ensureProducer = (): Promise<Producer> => {
    if (producer) return Promise.resolve(producer);
    producerConnecting ??= (async () => {
      const fresh = newProducer();
      try {
        await fresh.connect();
      } catch (err) {
        await fresh.disconnect().catch(() => undefined);
        throw err;
      }
      producer = fresh;
      return fresh;
    })().finally(() => {
      producerConnecting = undefined;
    });
    return producerConnecting;
  };

  /**
   * Drops a producer that went out of sync with the broker (its producer id or sequence is no longer
   * valid there); the next round connects a new one (a new producer id) through ensureProducer, and
   * keeps trying with backoff while the broker is still down. Only the producer that failed is
   * dropped: loops that failed with the same one do not throw away its successor.
   */
  const resetProducer = async (failed: Producer): Promise<void> => {
    if (producer !== failed) return;
    log.warn('idempotent producer out of sync with the broker: starting a new producer');
    producer = undefined;
    await failed.disconnect().catch(() => undefined);
  };

  /**
   * One produce request at a time on the shared producer. kafkajs' idempotent producer assigns
   * sequence numbers per partition and is not safe for concurrent sends: two loops sending at once
   * (worst around a retried NOT_LEADER at start-up) made the broker take a batch for a duplicate and
   * ack it without appending it — the loop then deleted rows that never reached Kafka (found by
   * `npm run chaos`; tulios/kafkajs#353). The loops still claim and delete in parallel.
   */
  let sendChain: Promise<unknown> = Promise.resolve();
  const serializeSend = <T>(work: () => Promise<T>): Promise<T> => {
    const next = sendChain.then(work, work);
    sendChain = next.catch(() => undefined);
    return next;
  };

  /**
   * One round: claim, publish with `active`, delete what was acknowledged, commit. Returns the rows
   * handled.
   */
  const relayRound = async (active: Producer): Promise<number> => {
    const send: SendBatch = (topicMessages) => serializeSend(() => active.sendBatch({ topicMessages, acks: -1 }).then(() => undefined));
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      const rows = await claimOutboxBatch(client, config.RELAY_BATCH_SIZE);
      if (rows.length === 0) {
        await client.query('COMMIT');
        return 0;
      }
      const outcome = await publishBatch({
        rows,
        send,
        topicPrefix: config.KAFKA_TOPIC_PREFIX,
        onSendFailed: (topics) => topics.forEach((t) => metrics.publishErrors.inc({ topic: topicLabel(t) })),
      });
      const ackedAt = Date.now();
      await deletePublished(client, outcome.published.map((r) => r.id));
      await moveToDeadLetters(client, outcome.deadLettered.map((d) => ({ id: d.row.id, error: d.error })));
      await client.query('COMMIT');

      for (const row of outcome.published) {
        const topic = topicLabel(row.topic);
        metrics.published.inc({ topic });
        metrics.commitToPublish.observe({ topic }, Math.max(0, ackedAt - row.createdAtMs) / 1000);
      }
      for (const { row, error } of outcome.deadLettered) {
        metrics.deadLetters.inc({ topic: topicLabel(row.topic) });
        log.error({ outbox_id: row.id, event_id: row.eventId, topic: row.topic, type: row.type, error }, 'outbox row rejected for good: dead-lettered');
      }
      if (outcome.failure !== undefined) throw outcome.failure;
      return outcome.published.length + outcome.deadLettered.length;
    } catch (err) {
      // On a dead connection ROLLBACK fails too; PostgreSQL has then rolled back by itself.
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      });
      throw err;
    } finally {
      client.release(broken);
    }
  };

  const worker = async (index: number): Promise<void> => {
    let failures = 0;
    let lastWake: WakeReason = 'notify';
    while (running) {
      let handled: number;
      let used: Producer | undefined;
      try {
        // Connected before claiming, so no rows stay locked while a connect retries.
        used = await ensureProducer();
        handled = await relayRound(used);
        failures = 0;
      } catch (err) {
        failures += 1;
        const delay = backoffDelay(failures, retryPolicy);
        const kind = classifyPublishError(err);
        log.warn({ worker: index, err: { message: errorMessage(err) }, kind, failures, retry_in_ms: delay }, 'relay round failed: rows stay pending');
        if (kind === 'producer_state' && used) await resetProducer(used);
        await wakeup.sleep(delay);
        continue;
      }
      if (handled > 0) continue;
      if (lastWake === 'notify') {
        // FIELD-NOTES: a wake-up can beat the row's visibility to our snapshot; look once more shortly.
        lastWake = 'requery';
        await wakeup.sleep(requeryDelayMs);
        continue;
      }
      lastWake = await wakeup.wait(config.RELAY_POLL_INTERVAL_MS);
    }
  };

  /** Connects the producer and creates the contract topics, retrying until it works or we stop. */
  const connectKafka = async (): Promise<boolean> => {
    const admin = kafka.admin();
    const topics = contractTopicConfigs(config.KAFKA_TOPIC_PREFIX, { partitions: config.KAFKA_TOPIC_PARTITIONS, replicationFactor: config.KAFKA_REPLICATION_FACTOR });
    for (let attempt = 1; running; attempt++) {
      try {
        await admin.connect();
        await ensureTopics(admin, topics);
        await ensureProducer();
        return true;
      } catch (err) {
        const delay = backoffDelay(attempt, retryPolicy);
        log.warn({ err: { message: errorMessage(err) }, retry_in_ms: delay }, 'Kafka not ready: retrying');
        await wakeup.sleep(delay);
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

  return {
    start: async () => {
      if (running) return;
      running = true;
      await refreshGauges();
      gaugeTimer = setInterval(() => void refreshGauges(), config.RELAY_GAUGE_INTERVAL_MS);
      gaugeTimer.unref();
      supervisor = (async () => {
        if (!(await connectKafka())) return;
        await listener.start();
        log.info({ concurrency: config.RELAY_CONCURRENCY, batch_size: config.RELAY_BATCH_SIZE }, 'relay running');
        await Promise.all(Array.from({ length: config.RELAY_CONCURRENCY }, (_, i) => worker(i)));
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
      wakeup.stopAll();
      await supervisor;
      await listener.stop();
      await producerConnecting?.catch(() => undefined);
      await producer?.disconnect().catch(() => undefined);
      producer = undefined;
    },
  };
}

type WakeReason = 'notify' | 'poll' | 'requery' | 'stop';

/**
 * Wakes sleeping workers. A notification that arrives while a worker is busy is remembered, so it
 * is never lost between a round that found nothing and the next wait.
 */
function createWakeup() {
  type Sleeper = { resolve: (reason: WakeReason) => void; timer: NodeJS.Timeout; wakeOnNotify: boolean };
  const sleepers = new Set<Sleeper>();
  let pendingNotify = false;
  let stopped = false;

  const park = (ms: number, wakeOnNotify: boolean): Promise<WakeReason> => {
    if (stopped) return Promise.resolve('stop');
    if (wakeOnNotify && pendingNotify) {
      pendingNotify = false;
      return Promise.resolve('notify');
    }
    return new Promise((resolve) => {
      const sleeper: Sleeper = {
        wakeOnNotify,
        timer: setTimeout(() => {
          sleepers.delete(sleeper);
          resolve('poll');
        }, ms),
        resolve: (reason) => {
          clearTimeout(sleeper.timer);
          sleepers.delete(sleeper);
          resolve(reason);
        },
      };
      sleepers.add(sleeper);
    });
  };

  return {
    /** Waits for a notification, the poll interval, or stop. */
    wait: (ms: number) => park(ms, true),
    /** Sleeps (a backoff, the re-query pause): only stop cuts it short. */
    sleep: async (ms: number): Promise<void> => {
      await park(ms, false);
    },
    notifyAll: (reason: WakeReason) => {
      let woke = false;
      for (const s of [...sleepers]) {
        if (s.wakeOnNotify) {
          s.resolve(reason);
          woke = true;
        }
      }
      if (!woke) pendingNotify = true;
    },
    stopAll: () => {
      stopped = true;
      for (const s of [...sleepers]) s.resolve('stop');
    },
  };
}
