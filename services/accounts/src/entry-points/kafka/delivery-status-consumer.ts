import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Consumer, EachBatchPayload, Kafka } from 'kafkajs';
import { CONSUMER_TIMING, ensureTopics } from '@shared/kafka';
import type { Logger } from '@shared/logger';
import { createOffsetCommitter, type OffsetCommitter } from '@shared/offset-commits';
import { errorMessage } from '@shared/errors';
import { contractTopicConfigs, topicNames } from '@shared/topics';
import type { DomainDeps } from '../../domain/deps';
import { createRecordDeliveryStatuses } from '../../domain/record-delivery-status';
import { createDeliveryStatusBatchHandler } from './delivery-status-batch';
import { groupConcurrentCalls } from '@shared/group-concurrent-calls';

export const DELIVERY_STATUS_CONSUMER = 'accounts.delivery-status';
const STOP_GRACE_MS = 1_000;

export type DeliveryStatusConsumerDeps = Pick<DomainDeps, 'pool' | 'metrics' | 'clock' | 'logger'> &
  Partial<Pick<DomainDeps, 'mailOutage'>> & {
    kafka: Kafka;
    admin: Admin;
    topicPrefix: string;
    /** Partitions / replication of the contract topics when this service is the first to need them. */
    partitions?: number;
    replicationFactor?: number;
  };

/**
 * Runs `handleBatch` with offsets committed once a second: each resolved offset also goes to the committer.
 * The partitions of one fetch are handled side by side, so that their stores group into one transaction.
 */
async function runWithCommitter(
  consumer: Consumer,
  handleBatch: (payload: EachBatchPayload) => Promise<void>,
  logger: Logger,
  partitions: number,
): Promise<OffsetCommitter> {
  const commits = createOffsetCommitter({ logger });
  await consumer.run({
    partitionsConsumedConcurrently: partitions,
    eachBatchAutoResolve: false,
    ...commits.runOptions,
    eachBatch: (payload) =>
      handleBatch({
        ...payload,
        resolveOffset: (offset) => {
          payload.resolveOffset(offset);
          commits.resolved(payload.batch.topic, payload.batch.partition, offset);
        },
      }),
  });
  commits.start(consumer);
  return commits;
}

/**
 * Consumes mail.delivery-status into mail_delivery_status (what /email/status, /email/resend and
 * `Prefer: wait` read), one DB transaction per Kafka batch (a run of valid messages of one partition,
 * domain/record-delivery-status.ts) — batches of several partitions handled at once share it
 * (shared/src/group-concurrent-calls.ts). An offset is resolved only after its message's transaction
 * committed (and committed to Kafka within a second, shared/src/offset-commits.ts), so a crash
 * re-delivers and the processed_events dedupe absorbs it. A poison message is logged,
 * counted and parked in accounts_poison_events (then its offset is committed): one bad record never
 * stalls its partition. A database outage is retried in place with backoff.
 *
 * start() returns at once and connects in the background: the API must serve registrations while
 * Kafka is down (contract guarantee 3), so the consumer waits for the broker, not the service.
 * Message handling: delivery-status-batch.ts.
 */
export function createDeliveryStatusConsumer(deps: DeliveryStatusConsumerDeps) {
  const topic = topicNames(deps.topicPrefix).mailDeliveryStatus;
  const groupId = `${deps.topicPrefix}${DELIVERY_STATUS_CONSUMER}`;
  const log: Logger = deps.logger.child({ component: 'delivery-status-consumer' });
  let consumer: Consumer | undefined;
  let committer: OffsetCommitter | undefined;
  let stopping = false;
  let abort = new AbortController();
  // Backoff sleeps end at stop(), so shutdown never waits out a retry delay.
  const pause = (ms: number) => sleep(ms, undefined, { signal: abort.signal }).catch(() => undefined);
  let running = false;
  let loop: Promise<void> | undefined;

  const handleBatch = createDeliveryStatusBatchHandler({
    ...deps,
    topic,
    log,
    // Each partition's batch is stored in a transaction of its own, but batches handled at the same
    // time (one fetch, several partitions) share one: a transaction per fetch, not per partition.
    record: groupConcurrentCalls(createRecordDeliveryStatuses({ ...deps, consumerName: DELIVERY_STATUS_CONSUMER })),
    isStopping: () => stopping,
    pause: (ms) => pause(ms),
  });

  async function connectAndRun(): Promise<void> {
    for (let delayMs = 500; !stopping; delayMs = Math.min(delayMs * 2, 10_000)) {
      try {
        await deps.admin.connect();
        if (stopping) return;
        await ensureTopics(
          deps.admin,
          contractTopicConfigs(deps.topicPrefix, {
            partitions: deps.partitions ?? 6,
            replicationFactor: deps.replicationFactor ?? 0,
          }),
        );
        consumer = deps.kafka.consumer({ groupId, ...CONSUMER_TIMING });
        await consumer.connect();
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        if (stopping) {
          await consumer.disconnect();
          return;
        }
        committer = await runWithCommitter(consumer, handleBatch, log, deps.partitions ?? 6);
        running = true;
        log.info({ topic, group_id: groupId }, 'consuming delivery statuses');
        return;
      } catch (err) {
        log.warn(
          { err: { message: errorMessage(err) }, retry_in_ms: delayMs },
          'Kafka unavailable; delivery-status consumer will retry',
        );
        await consumer?.disconnect().catch(() => undefined);
        consumer = undefined;
        await pause(delayMs);
      }
    }
  }

  return {
    async start(): Promise<void> {
      stopping = false;
      abort = new AbortController();
      loop = connectAndRun();
    },
    async stop(): Promise<void> {
      stopping = true;
      abort.abort();
      // kafkajs cannot cancel a connect in progress (it retries for several seconds against a dead
      // broker): wait briefly, then let the loop notice `stopping` on its own.
      await Promise.race([loop, sleep(STOP_GRACE_MS)]);
      await committer?.stop();
      committer = undefined;
      await consumer?.disconnect();
      running = false;
    },
    isRunning: () => running,
  };
}
