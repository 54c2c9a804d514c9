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
  const published = await withTransaction<number, StoredOutboxEvent>(
    pool,
    async (_client, tx) => {
      // Another instance publishes: this transaction has written nothing, committing it is a no-op.
      if (tx.preamble[0]?.locked !== true) return -1;
      const events = tx.first;
      if (events.length === 0) return 0;
      const result = await publish(events);
      failure = result.failure;
      if (result.acked.length > 0)
        tx.finishWith(`DELETE FROM mailer_outbox WHERE id = ANY(${bigintArrayLiteral(result.acked.map((r) => r.id))})`);
      return result.acked.length;
    },
    {
      // The delete commits without waiting for its WAL flush: a PostgreSQL crash that undoes it brings the
      // events back to be published again (duplicates, in order; accounts drops them by event id).
      asynchronousCommit: true,
      beginWith: {
        // The lock in a statement of its own, BEFORE the read: in READ COMMITTED a statement's snapshot
        // is taken when it starts, so a read in the lock's own statement could still see rows the
        // previous holder deleted just before releasing the lock, and publish them again.
        preamble: `SELECT pg_try_advisory_xact_lock(hashtext('mailer_outbox_publisher')) AS locked`,
        name: 'mailer-outbox-read',
        // Read even when the lock was not taken (the rows are then ignored): one round trip either way.
        text: `SELECT id, topic, key, value, headers FROM mailer_outbox ORDER BY id LIMIT $1`,
        values: [limit],
      },
    },
  );
  if (failure !== undefined) throw failure;
  return published;
}
