import type { Queryable } from './queryable';

/** The most of a poison message's value kept for an operator (the table's CHECK says the same). */
export const POISON_VALUE_MAX_BYTES = 64 * 1024;
const ERROR_MAX_CHARS = 2000;

export type PoisonMessage = {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  error: string;
};

/** Parks one unreadable message; a redelivered one (same topic, partition, offset) is ignored. */
export async function parkPoisonMessage(db: Queryable, m: PoisonMessage, receivedAt: Date): Promise<void> {
  await db.query(
    `INSERT INTO accounts_poison_events (topic, partition, "offset", key, value, value_bytes, error, received_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
     ON CONFLICT (topic, partition, "offset") DO NOTHING`,
    [
      m.topic,
      m.partition,
      m.offset,
      m.key,
      m.value === null ? null : m.value.subarray(0, POISON_VALUE_MAX_BYTES),
      m.value?.length ?? 0,
      // A parse error may quote the message; PostgreSQL text cannot hold NUL.
      m.error.replaceAll('\u0000', ' ').slice(0, ERROR_MAX_CHARS),
      receivedAt,
    ],
  );
}
