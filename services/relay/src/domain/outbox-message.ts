import type { Message } from 'kafkajs';
import { envelopeHeaders } from '@shared/events';
import { TOPIC } from '@shared/topics';
import type { OutboxRow } from '../data-access/outbox-row';

const CONTRACT_TOPICS: ReadonlySet<string> = new Set(Object.values(TOPIC));

export function isContractTopic(topic: string): boolean {
  return CONTRACT_TOPICS.has(topic);
}

/** Kafka message of a row: key = aggregate id (the user id), the row's headers plus `id` and `type`. */
export function toKafkaMessage(row: OutboxRow): Message {
  const headers: Record<string, string> = {};
  for (const name of Object.keys(row.headers)) {
    const value = row.headers[name];
    if (value === null || value === undefined) continue;
    headers[name] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return {
    key: row.key,
    value: row.value,
    headers: Object.assign(headers, envelopeHeaders({ id: row.eventId, type: row.type })),
  };
}
