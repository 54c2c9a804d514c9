import type { EachBatchPayload, KafkaMessage } from 'kafkajs';
import {
  EVENT_TYPE,
  InvalidEventError,
  parseEvent,
  type Envelope,
  type MailDeliveryStatusPayload,
} from '@shared/events';
import type { Logger } from '@shared/logger';
import { errorMessage } from '@shared/errors';
import type { DomainDeps } from '../../domain/deps';
import type { RecordOutcome } from '../../domain/record-delivery-status';
import { parkPoisonMessage } from '../../data-access/poison-events-repository';

/** A delivery status is a few hundred bytes; anything far larger is poison, not an event. */
const MAX_EVENT_BYTES = 64 * 1024;

/** SQLSTATE class 22 (data exception) or a NOT NULL / CHECK violation: the same message fails every time. */
function isDataError(err: unknown): boolean {
  const code = err && typeof err === 'object' ? (err as { code?: unknown }).code : undefined;
  return typeof code === 'string' && (code.startsWith('22') || code === '23502' || code === '23514');
}

export type DeliveryStatusBatchDeps = Pick<DomainDeps, 'pool' | 'metrics' | 'clock'> & {
  topic: string;
  log: Logger;
  record: (events: Envelope<MailDeliveryStatusPayload>[]) => Promise<RecordOutcome[]>;
  isStopping: () => boolean;
  /** A backoff sleep that ends early at stop(). */
  pause: (ms: number) => Promise<void>;
};

/** Retries `work` in place while PostgreSQL is unavailable: the offset must not move past a message not yet stored. */
async function retryUntilStored(
  deps: Pick<DeliveryStatusBatchDeps, 'log' | 'isStopping' | 'pause'>,
  work: () => Promise<void>,
  heartbeat: () => Promise<void>,
  context: Record<string, unknown>,
): Promise<void> {
  for (let delayMs = 200; ; delayMs = Math.min(delayMs * 2, 5_000)) {
    try {
      await work();
      return;
    } catch (err) {
      if (deps.isStopping() || isDataError(err)) throw err;
      deps.log.warn(
        { ...context, err: { message: errorMessage(err) }, retry_in_ms: delayMs },
        'storing a consumed message failed; retrying',
      );
      await deps.pause(delayMs);
      await heartbeat();
    }
  }
}

/** Parks a message that is not a storable delivery status in accounts_poison_events. */
async function parkMessage(
  deps: DeliveryStatusBatchDeps,
  message: KafkaMessage,
  partition: number,
  heartbeat: () => Promise<void>,
  reason: string,
): Promise<void> {
  const { topic, log } = deps;
  // Parked before eachMessage returns, i.e. before kafkajs commits the offset: a crash in between
  // redelivers the message and the unique (topic, partition, offset) absorbs the second insert.
  const poison = { topic, partition, offset: message.offset, key: message.key, value: message.value, error: reason };
  await retryUntilStored(deps, () => parkPoisonMessage(deps.pool, poison, deps.clock.now()), heartbeat, {
    topic,
    partition,
    offset: message.offset,
  });
  deps.metrics.invalidEvents.inc({ topic });
  log.warn(
    { topic, partition, offset: message.offset, bytes: message.value?.length ?? 0, reason },
    'invalid delivery-status message parked in accounts_poison_events',
  );
}

/**
 * The delivery-status consumer's eachBatch: runs of valid events are stored in one transaction each
 * (domain/record-delivery-status.ts); poison messages are parked; an offset is resolved only once
 * everything up to it is stored. A database outage is retried in place; a run PostgreSQL refuses
 * (a data error) is retried one event at a time, and the refused event parked.
 */
export function createDeliveryStatusBatchHandler(
  deps: DeliveryStatusBatchDeps,
): (payload: EachBatchPayload) => Promise<void> {
  const { log, record } = deps;

  const untilStored = (work: () => Promise<void>, heartbeat: () => Promise<void>, context: Record<string, unknown>) =>
    retryUntilStored(deps, work, heartbeat, context);

  const park = (message: KafkaMessage, partition: number, heartbeat: () => Promise<void>, reason: string) =>
    parkMessage(deps, message, partition, heartbeat, reason);

  type Valid = { message: KafkaMessage; event: Envelope<MailDeliveryStatusPayload> };

  /** The message's event, or null after parking it (not a delivery status). */
  async function parse(
    message: KafkaMessage,
    partition: number,
    heartbeat: () => Promise<void>,
  ): Promise<Valid['event'] | null> {
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
      if (deps.isStopping() || !isDataError(err)) throw err;
      // Valid by its schema yet refused by PostgreSQL (a value out of a column's range): retrying
      // would stall the partition for ever, so it is parked like any other poison message.
      if (run.length === 1) {
        await park(
          run[0]?.message as KafkaMessage,
          partition,
          heartbeat,
          `rejected by PostgreSQL: ${errorMessage(err)}`,
        );
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

  return handleBatch;
}
