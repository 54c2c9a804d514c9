import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin, Consumer, EachBatchPayload, Kafka, KafkaMessage } from 'kafkajs';
import { CONSUMER_TIMING, ensureTopics } from '@shared/kafka';
import { EVENT_TYPE, InvalidEventError, parseEvent, type Envelope, type MailDeliveryStatusPayload } from '@shared/events';
import type { Logger } from '@shared/logger';
import { errorMessage } from '@shared/errors';
import { contractTopicConfigs, topicNames } from '@shared/topics';
import type { DomainDeps } from '../../domain/deps';
import { createRecordDeliveryStatuses } from '../../domain/record-delivery-status';
import { parkPoisonMessage } from '../../data-access/poison-events-repository';

export const DELIVERY_STATUS_CONSUMER = 'accounts.delivery-status';
const STOP_GRACE_MS = 1_000;
/** A delivery status is a few hundred bytes; anything far larger is poison, not an event. */
const MAX_EVENT_BYTES = 64 * 1024;

export type DeliveryStatusConsumerDeps = Pick<DomainDeps, 'pool' | 'metrics' | 'clock' | 'logger'> & {
  kafka: Kafka;
  admin: Admin;
  topicPrefix: string;
  /** Partitions / replication of the contract topics when this service is the first to need them. */
  partitions?: number;
  replicationFactor?: number;
};

/**
 * Consumes mail.delivery-status into mail_delivery_status (what /email/status, /email/resend and
 * `Prefer: wait` read), one DB transaction per Kafka batch (a run of valid messages of one partition,
 * domain/record-delivery-status.ts). An offset is resolved only after its message's transaction
 * committed, so a crash re-delivers and the processed_events dedupe absorbs it. A poison message is logged, counted and parked in
 * accounts_poison_events (then its offset is committed): one bad record never stalls its partition.
 * A database outage is retried in place with backoff.
 *
 * start() returns at once and connects in the background: the API must serve registrations while
 * Kafka is down (contract guarantee 3), so the consumer waits for the broker, not the service.
 */
/** SQLSTATE class 22 (data exception) or a NOT NULL / CHECK violation: the same message fails every time. */
function isDataError(err: unknown): boolean {
  const code = err && typeof err === 'object' ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && (code.startsWith('22') || code === '23502' || code === '23514');
}

export function createDeliveryStatusConsumer(deps: DeliveryStatusConsumerDeps) {
  const topic = topicNames(deps.topicPrefix).mailDeliveryStatus;
  const groupId = `${deps.topicPrefix}${DELIVERY_STATUS_CONSUMER}`;
  const log: Logger = deps.logger.child({ component: 'delivery-status-consumer' });
  const record = createRecordDeliveryStatuses({ ...deps, consumerName: DELIVERY_STATUS_CONSUMER });
  let consumer: Consumer | undefined;
  let stopping = false;
  let abort = new AbortController();
  // Backoff sleeps end at stop(), so shutdown never waits out a retry delay.
  const pause = (ms: number) => sleep(ms, undefined, { signal: abort.signal }).catch(() => undefined);
  let running = false;
  let loop: Promise<void> | undefined;

  /** Retries `work` in place while PostgreSQL is unavailable: the offset must not move past a message not yet stored. */
  async function untilStored(work: () => Promise<void>, heartbeat: () => Promise<void>, context: Record<string, unknown>): Promise<void> {
    for (let delayMs = 200; ; delayMs = Math.min(delayMs * 2, 5_000)) {
      try {
        await work();
        return;
      } catch (err) {
        if (stopping || isDataError(err)) throw err;
        log.warn({ ...context, err: { message: errorMessage(err) }, retry_in_ms: delayMs }, 'storing a consumed message failed; retrying');
        await pause(delayMs);
        await heartbeat();
      }
    }
  }

  async function park(message: KafkaMessage, partition: number, heartbeat: () => Promise<void>, reason: string): Promise<void> {
    // Parked before eachMessage returns, i.e. before kafkajs commits the offset: a crash in between
    // redelivers the message and the unique (topic, partition, offset) absorbs the second insert.
    const poison = { topic, partition, offset: message.offset, key: message.key, value: message.value, error: reason };
    await untilStored(() => parkPoisonMessage(deps.pool, poison, deps.clock.now()), heartbeat, { topic, partition, offset: message.offset });
    deps.metrics.invalidEvents.inc({ topic });
    log.warn({ topic, partition, offset: message.offset, bytes: message.value?.length ?? 0, reason }, 'invalid delivery-status message parked in accounts_poison_events');
  }

  type Valid = { message: KafkaMessage; event: Envelope<MailDeliveryStatusPayload> };

  /** The message's event, or null after parking it (not a delivery status). */
  async function parse(message: KafkaMessage, partition: number, heartbeat: () => Promise<void>): Promise<Valid['event'] | null> {
    try {
      if (message.value !== null && message.value.length > MAX_EVENT_BYTES) {
        throw new InvalidEventError(`message value is ${message.value.length} bytes, more than ${MAX_EVENT_BYTES}`);
      }
      return parseEvent(message.value, EVENT_TYPE.mailDeliveryStatus);
    } catch (err) {
      if (!(err instanceof InvalidEventError)) throw err;
      await park(message, partition, heartbeat, err.message);
      return null;
    }
  }

  /** Stores a run of valid events in one transaction; if PostgreSQL refuses one, one at a time (parking it). */
  async function store(run: Valid[], partition: number, heartbeat: () => Promise<void>): Promise<void> {
    if (run.length === 0) return;
    const context = { partition, first_offset: run[0]?.message.offset, events: run.length };
    try {
      await untilStored(async () => void (await record(run.map((v) => v.event))), heartbeat, context);
      log.debug(context, 'delivery statuses consumed');
      return;
    } catch (err) {
      if (stopping || !isDataError(err)) throw err;
      // Valid by its schema yet refused by PostgreSQL (a value out of a column's range): retrying
      // would stall the partition for ever, so it is parked like any other poison message.
      if (run.length === 1) {
        await park(run[0]?.message as KafkaMessage, partition, heartbeat, `rejected by PostgreSQL: ${errorMessage(err)}`);
        return;
      }
    }
    for (const one of run) await store([one], partition, heartbeat);
  }

  async function handleBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    let run: Valid[] = [];
    // A poison message is parked as it is met and ends the run of valid ones before it, which is stored
    // before the poison message's offset is resolved.
    for (const message of batch.messages) {
      if (!isRunning() || isStale()) break;
      const event = await parse(message, batch.partition, heartbeat);
      if (event) {
        run.push({ message, event });
        continue;
      }
      await store(run, batch.partition, heartbeat);
      run = [];
      resolveOffset(message.offset);
    }
    await store(run, batch.partition, heartbeat);
    const last = run.at(-1);
    if (last) resolveOffset(last.message.offset);
    await heartbeat();
  }

  async function connectAndRun(): Promise<void> {
    for (let delayMs = 500; !stopping; delayMs = Math.min(delayMs * 2, 10_000)) {
      try {
        await deps.admin.connect();
        if (stopping) return;
        await ensureTopics(deps.admin, contractTopicConfigs(deps.topicPrefix, { partitions: deps.partitions ?? 6, replicationFactor: deps.replicationFactor ?? 0 }));
        consumer = deps.kafka.consumer({ groupId, ...CONSUMER_TIMING });
        await consumer.connect();
        await consumer.subscribe({ topics: [topic], fromBeginning: true });
        if (stopping) {
          await consumer.disconnect();
          return;
        }
        await consumer.run({ eachBatchAutoResolve: false, eachBatch: handleBatch });
        running = true;
        log.info({ topic, group_id: groupId }, 'consuming delivery statuses');
        return;
      } catch (err) {
        log.warn({ err: { message: errorMessage(err) }, retry_in_ms: delayMs }, 'Kafka unavailable; delivery-status consumer will retry');
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
      await consumer?.disconnect();
      running = false;
    },
    isRunning: () => running,
  };
}
