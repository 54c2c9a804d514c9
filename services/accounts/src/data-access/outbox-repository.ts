import { envelopeHeaders, type Envelope } from '@shared/events';
import type { Queryable } from './queryable';

export type OutboxEvent = { topic: string; envelope: Envelope };

/**
 * Writes events to the outbox inside the caller's transaction, in one statement (one round trip and
 * one NOTIFY however many events). `topic` is the contract's name without any prefix (the relay
 * adds its own); the Kafka key is the aggregate id (the user id). Rows keep the array's order.
 */
export async function insertOutboxEvents(db: Queryable, events: OutboxEvent[]): Promise<void> {
  await db.query({
    name: 'accounts-insert-outbox-events',
    text: `INSERT INTO outbox ${outboxRowsFrom(1)}`,
    values: outboxValues(events),
  });
}

/**
 * The column list and SELECT of an outbox insert over parameters $first..$first+8 (the arrays of
 * outboxValues), keeping the array's order — shared with statements that insert more than the outbox.
 */
export const outboxRowsFrom = (first: number): string => {
  const p = (i: number) => `$${first + i}`;
  return `(event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers)
           SELECT event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers
             FROM unnest(${p(0)}::uuid[], ${p(1)}::text[], ${p(2)}::text[], ${p(3)}::text[], ${p(4)}::int[],
                         ${p(5)}::text[], ${p(6)}::timestamptz[], ${p(7)}::jsonb[], ${p(8)}::jsonb[])
                  WITH ORDINALITY
                    AS e(event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers, n)
            ORDER BY n`;
};

/** The nine column arrays outboxRowsFrom reads. */
export function outboxValues(events: OutboxEvent[]): unknown[] {
  const column = <T>(pick: (e: OutboxEvent) => T) => events.map(pick);
  return [
    column((e) => e.envelope.id),
    column((e) => e.topic),
    column((e) => e.envelope.aggregate_id),
    column((e) => e.envelope.type),
    column((e) => e.envelope.version),
    column((e) => e.envelope.aggregate_type),
    column((e) => e.envelope.occurred_at),
    column((e) => JSON.stringify(e.envelope.payload)),
    column((e) => JSON.stringify(envelopeHeaders(e.envelope))),
  ];
}
