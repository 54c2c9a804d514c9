import { bigintArrayLiteral, type FirstStatement, type Pool, type PoolClient } from '@shared/db';
import type { OutboxRow } from './outbox-row';

/** Plain SQL of the relay: claim, delete after the ack, dead-letter, and the operators' figures. */

/** A claimed row as PostgreSQL returns it (claimedRows makes it an OutboxRow). */
export type RawRow = {
  id: string;
  event_id: string;
  topic: string;
  key: string;
  type: string;
  value: string;
  headers: Record<string, unknown> | null;
  created_at_ms: number;
};

/*
 * The Kafka value — the contract's envelope as JSON text — is written by PostgreSQL in the claim: the
 * relay's event loop is its drain's bottleneck (PostgreSQL had cores to spare), and one text column
 * costs it less to receive than the seven the envelope is made of plus building the string. The
 * payload (jsonb) goes in as its stored text, occurred_at as ISO-8601 UTC with milliseconds, and the
 * strings through to_json, which escapes them as JSON. Fields in `buildEnvelope`'s order;
 * outbox-envelope.int.test.ts holds it byte for byte to JSON.stringify of the same envelope. concat()
 * would drop a NULL silently: every column it reads is NOT NULL (core schema). Headers: NULL when the row
 * has none (nothing to parse).
 */
const COLUMNS = `o.id, o.event_id, o.topic, o.key, o.type,
  concat('{"id":', to_json(o.event_id), ',"type":', to_json(o.type), ',"version":', o.version,
    ',"occurred_at":"', to_char(o.occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    '","aggregate_type":', to_json(o.aggregate_type), ',"aggregate_id":', to_json(o.key),
    ',"payload":', o.payload, '}') AS value,
  nullif(o.headers, '{}'::jsonb) AS headers,
  (extract(epoch FROM o.created_at) * 1000)::float8 AS created_at_ms`;

/*
 * Why per-key order holds, with any number of relays (and loops) claiming at once:
 *
 * 1. A row is claimed as a HEAD only if no older row (lower id) of its key is visible: the older rows
 *    were all deleted, and a row is deleted only in the transaction that commits after the broker
 *    acknowledged it (claim-and-delete). So everything older of that key is already in Kafka.
 * 2. The head is locked FOR UPDATE SKIP LOCKED and stays locked until our transaction ends. While it
 *    exists, no other relay sees any later row of the key as a head (the head is older and visible),
 *    so no one else can claim anything of that key: one relay at a time owns a key.
 * 3. The owner may also take the key's later rows (followers) in id order in the same transaction and
 *    sends them in one produce request per partition, in id order, acks=all, idempotent producer.
 * 4. If the owner dies mid-batch, PostgreSQL rolls the transaction back when the connection drops: the
 *    rows are back, unlocked, and the next owner resends from the head. Kafka may then hold a prefix
 *    twice (1,2,1,2,3) — a duplicate, never a reordering: a consumer that dedupes by id sees 1,2,3.
 *
 * THE ASSUMPTION all of this rests on: rows of one key are written by serialized writers, so that per
 * key, id order is commit order. Every transaction that inserts outbox rows for user K either creates
 * user K's row (registration) or holds its row lock (`lockUser`, SELECT … FOR UPDATE: resend) BEFORE it
 * inserts them, until it commits. If a writer broke this (T1 takes id 10, T2 takes id 11 and commits
 * first), the relay would see 11 as the key's head while 10 is invisible, publish 11, then 10: a
 * reordering. services/accounts/test/outbox-writer-order.int.test.ts fails if a writer stops locking.
 * Such a race can also make two relays' follower locks wait on each other, which PostgreSQL resolves as
 * a deadlock error: that claim rolls back before anything is sent.
 */
/*
 * One statement, one round trip: the heads (SKIP LOCKED), then later rows of those keys (waiting for
 * their locks, as before) up to the batch size, both from the statement's one snapshot.
 *
 * Written to stay cheap when the planner's statistics are stale — the outbox analyzed while nearly
 * empty, then a backlog after a Kafka outage. With a plain NOT EXISTS the planner, believing in one row,
 * chose an anti-join that compares every row with every row: 14 s for one claim over 10,000 rows, past
 * the statement timeout, every round. So: `OFFSET 0` keeps NOT EXISTS a per-row subquery (no join), the
 * row comparisons `(key, id) < (…)` can only be answered by the (key, id) index (never by a range of
 * the primary key, which on a draining table is mostly dead entries), and each CTE reads its rows'
 * columns itself instead of joining the outbox again on the claimed ids. The relay also refreshes the
 * statistics when a backlog outgrows them (entry-points/outbox-gauges.ts).
 *
 * The followers, likewise, are found from the heads, never by joining the outbox to them: the same stale
 * statistics made the join a nested loop of every pending row against every head (13 s for one claim
 * of 954 heads over 40,000 rows — whenever heads are fewer than the batch: few keys, or other loops
 * holding most of them). Each head reads at most its share of the remaining batch from the (key, id)
 * index (a prefix of its key, in id order), the oldest of those are kept, and only they are locked, by
 * primary key. Work: about the batch size, whatever the outbox holds.
 */
const CLAIM = `
  WITH heads AS (
    SELECT ${COLUMNS}
    FROM outbox o
    WHERE NOT EXISTS (
      SELECT 1 FROM outbox older WHERE older.key = o.key AND (older.key, older.id) < (o.key, o.id) OFFSET 0)
    ORDER BY o.id
    LIMIT $1
    FOR UPDATE OF o SKIP LOCKED
  ), budget AS (
    SELECT greatest(0, $1 - count(*)) AS rows, count(*) AS heads FROM heads
  ), candidates AS (
    SELECT f.id
    FROM heads h
    CROSS JOIN budget b
    CROSS JOIN LATERAL (
      SELECT o.id FROM outbox o
      WHERE o.key = h.key AND (o.key, o.id) > (h.key, h.id)
      ORDER BY o.key, o.id
      LIMIT (b.rows + greatest(b.heads, 1) - 1) / greatest(b.heads, 1)
    ) f
    WHERE b.rows > 0
    ORDER BY f.id
    LIMIT (SELECT rows FROM budget)
  ), followers AS (
    SELECT f.*
    FROM candidates c
    CROSS JOIN LATERAL (
      SELECT ${COLUMNS}
      FROM outbox o
      WHERE o.id = c.id
      FOR UPDATE OF o
    ) f
  )
  SELECT * FROM heads UNION ALL SELECT * FROM followers
  ORDER BY id`;

/**
 * Claims up to `limit` pending rows inside the caller's transaction: the oldest row of as many keys
 * as possible, then later rows of those same keys. Returned in id order (per key: commit order).
 */
export async function claimOutboxBatch(client: PoolClient, limit: number): Promise<OutboxRow[]> {
  return claimedRows((await client.query<RawRow>(claimStatement(limit))).rows);
}

/** The claim as a round's first statement: `withTransaction`'s `beginWith` sends it with the BEGIN. */
export const claimStatement = (limit: number): FirstStatement => ({
  name: 'relay-claim',
  text: CLAIM,
  values: [limit],
});

/** The claim's rows, in id order. */
export const claimedRows = (rows: RawRow[]): OutboxRow[] => rows.map(toOutboxRow);

/**
 * The statement deleting rows the broker acknowledged (published rows are not kept: the table holds
 * pending rows only), for `finishWith`: it goes to PostgreSQL with the round's COMMIT, in one round trip.
 */
export function deletePublishedSql(ids: string[]): string {
  return `DELETE FROM outbox WHERE id = ANY(${bigintArrayLiteral(ids)})`;
}

/**
 * Moves rows the broker rejected for good to outbox_dead_letters, with the reason. A row an operator
 * re-inserted from there (same event_id, new outbox id) and that is rejected again replaces its earlier
 * dead letter: the table keeps the latest attempt of each event, and the row never leaves the outbox
 * without a record.
 */
export async function moveToDeadLetters(client: PoolClient, entries: { id: string; error: string }[]): Promise<void> {
  if (entries.length === 0) return;
  await client.query(
    `WITH moved AS (
       DELETE FROM outbox o USING unnest($1::bigint[], $2::text[]) AS d(id, error)
       WHERE o.id = d.id
       RETURNING o.*, d.error
     )
     INSERT INTO outbox_dead_letters
       (outbox_id, event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers, created_at,
        error)
     SELECT id, event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers, created_at, error
     FROM moved
     ON CONFLICT (event_id) DO UPDATE SET
       outbox_id = EXCLUDED.outbox_id, topic = EXCLUDED.topic, key = EXCLUDED.key, type = EXCLUDED.type,
       version = EXCLUDED.version, aggregate_type = EXCLUDED.aggregate_type, occurred_at = EXCLUDED.occurred_at,
       payload = EXCLUDED.payload, headers = EXCLUDED.headers, created_at = EXCLUDED.created_at,
       error = EXCLUDED.error, dead_lettered_at = now()`,
    [entries.map((e) => e.id), entries.map((e) => e.error.slice(0, 2_000))],
  );
}

/**
 * Where the backlog count stops: beyond it `outbox_backlog` stays at this value. Counting reads every
 * pending row, once a second on each relay; during a long outage with millions of rows that would be a
 * full scan a second. 100,000 unpublished rows is far past any alert threshold; how long the outage
 * lasts is still told by outbox_oldest_unpublished_age_seconds, which has no cap.
 */
export const BACKLOG_COUNT_CAP = 100_000;

/**
 * Pending depth (at most `countCap`), age of the oldest pending row, and how many rows the planner
 * believes the outbox holds (pg_class.reltuples: -1 if never analyzed). Depth and age read only pending
 * rows (published ones are deleted); the count stops at the cap, and the age uses the primary key's
 * first entry (an index lookup) rather than a scan.
 */
export async function readBacklog(
  pool: Pool,
  countCap = BACKLOG_COUNT_CAP,
): Promise<{ backlog: number; oldestAgeSeconds: number; plannerRows: number }> {
  const { rows } = await pool.query<{ backlog: number; oldest_age_s: number | null; planner_rows: number | null }>(
    `SELECT (SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT $1) capped)::int AS backlog,
            extract(epoch FROM clock_timestamp() - (SELECT created_at FROM outbox ORDER BY id LIMIT 1))::float8
              AS oldest_age_s,
            (SELECT reltuples FROM pg_class WHERE oid = 'outbox'::regclass)::float8 AS planner_rows`,
    [countCap],
  );
  const row = rows[0];
  return {
    backlog: row?.backlog ?? 0,
    oldestAgeSeconds: Math.max(0, row?.oldest_age_s ?? 0),
    plannerRows: row?.planner_rows ?? -1,
  };
}

/** Refreshes the planner's statistics of the outbox (a sample, not a scan: tens of milliseconds). */
export async function analyzeOutbox(pool: Pool): Promise<void> {
  await pool.query('ANALYZE outbox');
}

/** Most rows carry no headers of their own (PostgreSQL sends NULL for `{}`: nothing to parse). */
const NO_HEADERS: Readonly<Record<string, unknown>> = Object.freeze({});

function toOutboxRow(r: RawRow): OutboxRow {
  return {
    id: r.id,
    eventId: r.event_id,
    topic: r.topic,
    key: r.key,
    type: r.type,
    value: r.value,
    headers: r.headers ?? NO_HEADERS,
    createdAtMs: r.created_at_ms,
  };
}
