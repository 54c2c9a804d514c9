import { errorMessage } from '@shared/errors';
import type { IdempotentProducer, PartitionResult } from '@shared/idempotent-producer';
import { classifyPublishError } from '@shared/kafka-errors';
import type { OutboxRow } from '../data-access/outbox-row';
import { isContractTopic, toKafkaMessage } from './outbox-message';
import type { PartitionCooldown } from './partition-cooldown';

export type PartitionPublisher = Pick<IdempotentProducer, 'sendPerPartition' | 'connect'>;

export type PublishOutcome = {
  /** Acknowledged by the broker: delete them. */
  published: OutboxRow[];
  /** Rejected for good: move them aside with the reason. */
  deadLettered: { row: OutboxRow; error: string }[];
  /** Left pending because their partition failed or is cooling down (retried on a later round). */
  pending: OutboxRow[];
  /** The first partition failure, if any (for logs and backoff). */
  failure?: unknown;
};

/**
 * Publishes claimed rows (in id order), one batch per topic-partition and one produce request per
 * partition leader, on a producer identity that has never failed (see shared/src/idempotent-producer.ts);
 * each partition's outcome is its own. A failure stays in its partition:
 * - the broker rejected the partition's batch for good (a record too large, invalid): its rows are
 *   re-sent one by one in id order, the offending ones are dead-lettered, the others go out;
 * - anything else (no leader, timeout, lost answer): the partition's rows stay pending, from the first
 *   one not acknowledged, and the partition cools down; other partitions are unaffected.
 * Order: in each partition (so per key and topic) what is published or dead-lettered is a prefix of the
 * claimed rows. Rows of one key on two topics are on two partitions and may go out independently;
 * Kafka orders nothing across topics anyway.
 */
export async function publishBatch(opts: {
  rows: OutboxRow[];
  producer: PartitionPublisher;
  topicPrefix: string;
  cooldown: PartitionCooldown;
  onSendFailed: (topic: string, err: unknown) => void;
}): Promise<PublishOutcome> {
  const { producer, topicPrefix, cooldown } = opts;
  const outcome: PublishOutcome = { published: [], deadLettered: [], pending: [] };
  const sendable: OutboxRow[] = [];
  for (const row of opts.rows) {
    if (isContractTopic(row.topic)) sendable.push(row);
    else
      outcome.deadLettered.push({
        row,
        error: `unknown topic ${JSON.stringify(row.topic.slice(0, 100))}: not a contract topic`,
      });
  }
  if (sendable.length === 0) return outcome;

  const record = (row: OutboxRow) => ({ topic: topicPrefix + row.topic, message: toKafkaMessage(row) });
  const results = await producer.sendPerPartition(sendable, record, cooldown.coolingDown);
  for (const result of results) {
    if (result.skipped) {
      outcome.pending.push(...result.items);
      continue;
    }
    if (result.error === undefined) {
      cooldown.succeeded(result.topic, result.partition);
      outcome.published.push(...result.items);
      continue;
    }
    opts.onSendFailed(result.items[0]?.topic ?? result.topic, result.error);
    if (classifyPublishError(result.error) === 'rejected') {
      await resendOneByOne(result, { ...opts, record }, outcome);
    } else {
      leavePending(result, result.items, result.error, outcome, cooldown);
    }
  }
  return outcome;
}

/** Finds the rejected rows of a partition whose batch the broker refused: one request per row. */
async function resendOneByOne(
  result: PartitionResult<OutboxRow>,
  opts: {
    producer: PartitionPublisher;
    cooldown: PartitionCooldown;
    record: (row: OutboxRow) => ReturnType<PartitionPublisherRecord>;
    onSendFailed: (topic: string, err: unknown) => void;
  },
  outcome: PublishOutcome,
): Promise<void> {
  for (const [i, row] of result.items.entries()) {
    const [single] = await opts.producer.sendPerPartition([row], opts.record);
    if (single?.error === undefined) {
      outcome.published.push(row);
      continue;
    }
    opts.onSendFailed(row.topic, single.error);
    if (classifyPublishError(single.error) === 'rejected') {
      outcome.deadLettered.push({ row, error: errorMessage(single.error) });
      continue;
    }
    // Stop here: rows after this one may belong to its key and must wait for it.
    leavePending(result, result.items.slice(i), single.error, outcome, opts.cooldown);
    return;
  }
  opts.cooldown.succeeded(result.topic, result.partition);
}

type PartitionPublisherRecord = (row: OutboxRow) => { topic: string; message: ReturnType<typeof toKafkaMessage> };

function leavePending(
  result: PartitionResult<OutboxRow>,
  rows: OutboxRow[],
  error: unknown,
  outcome: PublishOutcome,
  cooldown: PartitionCooldown,
): void {
  outcome.pending.push(...rows);
  outcome.failure ??= error;
  cooldown.failed(result.topic, result.partition);
}
