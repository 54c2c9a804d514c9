import { envelopeHeaders, type Envelope } from '@shared/events';
import type { Queryable } from './queryable';

/**
 * Writes an event to the outbox inside the caller's transaction. `topic` is the contract's name
 * without any prefix (the relay adds its own); the Kafka key is the aggregate id (the user id).
 */
export async function insertOutboxEvent(db: Queryable, topic: string, envelope: Envelope): Promise<void> {
  await db.query(
    `INSERT INTO outbox (event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      envelope.id,
      topic,
      envelope.aggregate_id,
      envelope.type,
      envelope.version,
      envelope.aggregate_type,
      envelope.occurred_at,
      JSON.stringify(envelope.payload),
      JSON.stringify(envelopeHeaders(envelope)),
    ],
  );
}
