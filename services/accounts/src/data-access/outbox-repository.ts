import { envelopeHeaders, type Envelope } from '@shared/events';
import type { Queryable } from './queryable';

export type OutboxEvent = { topic: string; envelope: Envelope };

/**
 * Writes events to the outbox inside the caller's transaction, in one statement (one round trip and
 * one NOTIFY however many events). `topic` is the contract's name without any prefix (the relay
 * adds its own); the Kafka key is the aggregate id (the user id). Rows keep the array's order.
 */
export async function insertOutboxEvents(db: Queryable, events: OutboxEvent[]): Promise<void> {
  const column = <T>(pick: (e: OutboxEvent) => T) => events.map(pick);
  await db.query({
    name: 'accounts-insert-outbox-events',
    text: `INSERT INTO outbox (event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers)
           SELECT event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[], $7::timestamptz[], $8::jsonb[], $9::jsonb[])
                  WITH ORDINALITY AS e(event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers, n)
            ORDER BY n`,
    values: [
      column((e) => e.envelope.id),
      column((e) => e.topic),
      column((e) => e.envelope.aggregate_id),
      column((e) => e.envelope.type),
      column((e) => e.envelope.version),
      column((e) => e.envelope.aggregate_type),
      column((e) => e.envelope.occurred_at),
      column((e) => JSON.stringify(e.envelope.payload)),
      column((e) => JSON.stringify(envelopeHeaders(e.envelope))),
    ],
  });
}
