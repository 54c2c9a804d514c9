import type { Message } from 'kafkajs';
import { envelopeHeaders, type Envelope } from '@shared/events';
import { TOPIC } from '@shared/topics';
import type { OutboxRow } from '../data-access/outbox-row';

const CONTRACT_TOPICS: ReadonlySet<string> = new Set(Object.values(TOPIC));

export function isContractTopic(topic: string): boolean {
  return CONTRACT_TOPICS.has(topic);
}

/**
 * The envelope the row announces as JSON text: the same fields `buildEnvelope` produces, with the
 * stored payload text spliced in unparsed (it is jsonb, so valid JSON by construction).
 */
export function envelopeJson(row: OutboxRow): string {
  const head: Omit<Envelope, 'payload'> = {
    id: row.eventId,
    type: row.type,
    version: row.version,
    occurred_at: row.occurredAt,
    aggregate_type: row.aggregateType,
    aggregate_id: row.key,
  };
  return `${JSON.stringify(head).slice(0, -1)},"payload":${row.payloadJson}}`;
}

/** Kafka message of a row: key = aggregate id (the user id), the row's headers plus `id` and `type`. */
export function toKafkaMessage(row: OutboxRow): Message {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(row.headers)) {
    if (value === null || value === undefined) continue;
    headers[name] = typeof value === 'string' ? value : JSON.stringify(value);
  }
  return {
    key: row.key,
    value: envelopeJson(row),
    headers: { ...headers, ...envelopeHeaders({ id: row.eventId, type: row.type }) },
  };
}
