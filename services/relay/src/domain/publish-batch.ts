import type { TopicMessages } from 'kafkajs';
import { errorMessage } from '@shared/errors';
import { classifyPublishError } from '@shared/kafka-errors';
import type { OutboxRow } from '../data-access/outbox-row';
import { isContractTopic, toKafkaMessage } from './outbox-message';

/** Sends messages and resolves once the broker acknowledged all of them (acks = all). */
export type SendBatch = (topicMessages: TopicMessages[]) => Promise<void>;

export type PublishOutcome = {
  /** Acknowledged by the broker: delete them. */
  published: OutboxRow[];
  /** Rejected for good: move them aside with the reason. */
  deadLettered: { row: OutboxRow; error: string }[];
  /** Set when the rest of the batch stays pending (retry after a backoff). */
  failure?: unknown;
};

/**
 * Publishes claimed rows (in id order) as one produce request per partition. If the broker refuses
 * the batch for good, the rows are re-sent one by one in id order so that only the offending row is
 * dead-lettered and the rows behind it, of its key or not, still go out. Whatever the outcome, the rows
 * reported as published or dead-lettered form a prefix of each key's rows: the ordering invariant.
 */
export async function publishBatch(opts: {
  rows: OutboxRow[];
  send: SendBatch;
  topicPrefix: string;
  onSendFailed: (topics: string[], err: unknown) => void;
}): Promise<PublishOutcome> {
  const { rows, send, topicPrefix, onSendFailed } = opts;
  const deadLettered: PublishOutcome['deadLettered'] = [];
  const sendable: OutboxRow[] = [];
  for (const row of rows) {
    if (isContractTopic(row.topic)) sendable.push(row);
    else deadLettered.push({ row, error: `unknown topic ${JSON.stringify(row.topic.slice(0, 100))}: not a contract topic` });
  }
  if (sendable.length === 0) return { published: [], deadLettered };

  try {
    await send(toTopicMessages(sendable, topicPrefix));
    return { published: sendable, deadLettered };
  } catch (err) {
    onSendFailed(distinctTopics(sendable), err);
    if (classifyPublishError(err) !== 'rejected') return { published: [], deadLettered, failure: err };
  }

  // Some row of the batch (or the batch as a whole) is too much for the broker: find out which.
  const published: OutboxRow[] = [];
  for (const row of sendable) {
    try {
      await send(toTopicMessages([row], topicPrefix));
      published.push(row);
    } catch (err) {
      onSendFailed([row.topic], err);
      if (classifyPublishError(err) === 'rejected') {
        deadLettered.push({ row, error: errorMessage(err) });
        continue;
      }
      // Stop here: rows after this one may belong to its key and must wait for it.
      return { published, deadLettered, failure: err };
    }
  }
  return { published, deadLettered };
}

function toTopicMessages(rows: OutboxRow[], topicPrefix: string): TopicMessages[] {
  const byTopic = new Map<string, TopicMessages>();
  for (const row of rows) {
    const topic = topicPrefix + row.topic;
    let entry = byTopic.get(topic);
    if (!entry) {
      entry = { topic, messages: [] };
      byTopic.set(topic, entry);
    }
    entry.messages.push(toKafkaMessage(row));
  }
  return [...byTopic.values()];
}

function distinctTopics(rows: OutboxRow[]): string[] {
  return [...new Set(rows.map((r) => r.topic))];
}
