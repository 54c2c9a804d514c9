import { bigintArrayLiteral, withTransaction, type Pool, type PoolClient } from '@shared/db';
import type { TOPIC } from '@shared/topics';

/** An event the mailer owes Kafka; stored in mailer_outbox in the transaction of its outcome. */
export type OutboxEvent = {
  /** The contract's topic name (the instance's prefix is added when publishing). */
  topic: typeof TOPIC.mailDeliveryStatus | typeof TOPIC.mailRequestsDlq;
  key: string | null;
  value: string;
  headers: Record<string, string>;
};

export type StoredOutboxEvent = OutboxEvent & { id: string };

export async function insertOutboxEvents(client: PoolClient, events: OutboxEvent[]): Promise<void> {
  if (events.length === 0) return;
  await client.query(
    `INSERT INTO mailer_outbox (topic, key, value, headers)
     SELECT topic, key, value, headers
     FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[]) WITH ORDINALITY AS e(topic, key, value, headers, ord)
     ORDER BY ord`,
    [
      events.map((e) => e.topic),
      events.map((e) => e.key),
      events.map((e) => e.value),
      events.map((e) => JSON.stringify(e.headers)),
    ],
  );
}

/** What a publish acknowledged; `failure` set when some events were not (they stay pending). */
export type PublishResult = { acked: StoredOutboxEvent[]; failure?: unknown };

/**
 * Publishes the oldest pending events and deletes those the broker acknowledged; the rest stay pending
 * and the failure is rethrown after the commit.
 * One publisher at a time across instances (a transaction-scoped advisory lock): two publishers taking
 * interleaved rows could reorder one request's statuses (deferred after sent). Returns how many went
 * out, or -1 when another instance holds the lock.
 */
export async function publishOutboxBatch(
  pool: Pool,
  limit: number,
  publish: (events: StoredOutboxEvent[]) => Promise<PublishResult>,
): Promise<number> {
  let failure: unknown;
  // Two round trips and the produce: BEGIN with the lock and the read, the delete with the COMMIT.
  const published = await withTransaction<number, OutboxRowSelected>(
    pool,
    async (_client, tx) => {
      const rows = tx.first;
      // Another instance publishes: this transaction has written nothing, committing it is a no-op.
      if (!rows[0]?.locked) return -1;
      const events: StoredOutboxEvent[] = rows.flatMap((r) =>
        r.id === null ? [] : [{ id: r.id, topic: r.topic, key: r.key, value: r.value, headers: r.headers }],
      );
      if (events.length === 0) return 0;
      const result = await publish(events);
      failure = result.failure;
      if (result.acked.length > 0)
        tx.finishWith(`DELETE FROM mailer_outbox WHERE id = ANY(${bigintArrayLiteral(result.acked.map((r) => r.id))})`);
      return result.acked.length;
    },
    { beginWith: { name: 'mailer-outbox-lock-select', text: LOCK_AND_READ, values: [limit] } },
  );
  if (failure !== undefined) throw failure;
  return published;
}

/** The publisher's lock and its read in one statement: `locked` comes with every row, or alone (no rows). */
const LOCK_AND_READ = `
  WITH l AS MATERIALIZED (SELECT pg_try_advisory_xact_lock(hashtext('mailer_outbox_publisher')) AS locked)
  SELECT l.locked, o.id, o.topic, o.key, o.value, o.headers
    FROM l LEFT JOIN LATERAL (
      SELECT id, topic, key, value, headers FROM mailer_outbox WHERE l.locked ORDER BY id LIMIT $1
    ) o ON true`;

type OutboxRowSelected = {
  locked: boolean;
  /** null: the lock was taken and the table is empty (the lone row carries only `locked`). */
  id: string | null;
  topic: OutboxEvent['topic'];
  key: string | null;
  value: string;
  headers: Record<string, string>;
};
