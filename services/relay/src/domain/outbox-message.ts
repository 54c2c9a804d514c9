import type { Message } from 'kafkajs';
import { envelopeHeaders, type Envelope } from '@shared/events';
import { TOPIC } from '@shared/topics';
import type { OutboxRow } from '../data-access/outbox-row';

const CONTRACT_TOPICS: ReadonlySet<string> = new Set(Object.values(TOPIC));

export function isContractTopic(topic: string): boolean {
  return CONTRACT_TOPICS.has(topic);
}

/** The envelope the row announces; the same shape `buildEnvelope` produces. */
export function toEnvelope(row: OutboxRow): Envelope {
  return {
    id: row.eventId,
    type: row.type,
    version: row.version,
    occurred_at: row.occurredAt.toISOString(),
    aggregate_type: row.aggregateType,
    aggregate_id: row.key,
    payload: row.payload,
  };
}

/** Kafka message of a row: key = aggregate id (the user id), the row's headers plus `id` and `type`. */
export function toKafkaMessage(row: OutboxRow): Message {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(row.headers)) {
    if (value === null || value === undefined) continue;
    headers[name] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  const envelope = toEnvelope(row);
  return {
    key: row.key,
    value: JSON.stringify(envelope),
    headers: { ...headers, ...envelopeHeaders(envelope) },
  };
}
