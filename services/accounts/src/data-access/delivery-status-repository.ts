import type { DeliveryStatus, ErrorClass } from '@shared/events';
import type { FirstStatement } from '@shared/db';
import type { Queryable } from './queryable';

export type DeliveryStatusRow = {
  request_id: string;
  user_id: string;
  status: DeliveryStatus;
  attempt: number;
  error_class: ErrorClass | null;
  updated_at: Date;
  /** DLQ replay generation (0: the original delivery); selected where statuses are ordered. */
  generation?: number;
  provider: string | null;
  next_attempt_at: Date | null;
};

export async function insertQueuedDeliveryStatus(
  db: Queryable,
  s: { requestId: string; userId: string; at: Date },
): Promise<void> {
  await db.query({
    name: 'accounts-insert-queued-status',
    text: `INSERT INTO mail_delivery_status (request_id, user_id, status, attempt, updated_at)
           VALUES ($1, $2, 'queued', 0, $3)`,
    values: [s.requestId, s.userId, s.at],
  });
}

export async function findDeliveryStatus(db: Queryable, requestId: string): Promise<DeliveryStatusRow | null> {
  const { rows } = await db.query<DeliveryStatusRow>(
    `SELECT request_id, user_id, status, attempt, error_class, updated_at, provider, next_attempt_at
       FROM mail_delivery_status WHERE request_id = $1`,
    [requestId],
  );
  return rows[0] ?? null;
}

/** The delivery status of the user's newest confirmation request (null before any request). */
export async function findNewestRequestStatus(db: Queryable, userId: string): Promise<DeliveryStatusRow | null> {
  const { rows } = await db.query<DeliveryStatusRow>(
    `SELECT ec.request_id, ec.user_id, coalesce(mds.status, 'queued') AS status, coalesce(mds.attempt, 0) AS attempt,
            mds.error_class, coalesce(mds.updated_at, ec.created_at) AS updated_at, mds.provider, mds.next_attempt_at
       FROM email_confirmations ec
       LEFT JOIN mail_delivery_status mds ON mds.request_id = ec.request_id
      WHERE ec.user_id = $1 ORDER BY ec.created_at DESC LIMIT 1`,
    [userId],
  );
  return rows[0] ?? null;
}

export type DeliveryStatusUpdate = {
  requestId: string;
  userId: string;
  status: DeliveryStatus;
  attempt: number;
  generation: number;
  errorClass: ErrorClass | null;
  smtpMessageId: string | null;
  provider: string | null;
  nextAttemptAt: string | null;
  eventId: string;
  occurredAt: string;
  at: Date;
};

/** `openDeliveryStatuses`' rows: an event id this consumer had not applied, or a stored status, locked. */
export type OpenedRow = { fresh_event_id: string | null } & (DeliveryStatusRow | Record<keyof DeliveryStatusRow, null>);

/**
 * The first statement of a batch of statuses, for `withTransaction`'s `beginWith` (it then travels with
 * the BEGIN): records that `consumer` applied these events (returning the ids it had not applied before:
 * the dedupe) and locks the stored statuses of these requests, in request_id order so that two lockers
 * never deadlock. FOR UPDATE returns each row's latest committed version.
 */
export function openDeliveryStatuses(consumer: string, eventIds: string[], requestIds: string[]): FirstStatement {
  return {
    name: 'accounts-open-delivery-statuses',
    text: `WITH fresh AS (
             INSERT INTO processed_events (consumer, event_id) SELECT $1, unnest($2::uuid[])
             ON CONFLICT DO NOTHING RETURNING event_id
           ), stored AS (
             SELECT request_id, user_id, status, attempt, error_class, updated_at, generation, provider, next_attempt_at
               FROM mail_delivery_status WHERE request_id = ANY($3::uuid[]) ORDER BY request_id FOR UPDATE
           )
           SELECT event_id AS fresh_event_id, NULL::uuid AS request_id, NULL::uuid AS user_id, NULL::text AS status,
                  NULL::int AS attempt, NULL::text AS error_class, NULL::timestamptz AS updated_at,
                  NULL::int AS generation, NULL::text AS provider, NULL::timestamptz AS next_attempt_at
             FROM fresh
           UNION ALL
           SELECT NULL, * FROM stored`,
    values: [consumer, eventIds, requestIds],
  };
}

/** `openDeliveryStatuses`' rows as what they say: the event ids not applied before, the stored statuses. */
export function readOpened(rows: OpenedRow[]): { fresh: Set<string>; stored: Map<string, DeliveryStatusRow> } {
  const fresh = new Set<string>();
  const stored = new Map<string, DeliveryStatusRow>();
  for (const r of rows) {
    if (r.fresh_event_id) fresh.add(r.fresh_event_id);
    else if (r.request_id) stored.set(r.request_id, r);
  }
  return { fresh, stored };
}

const updateColumns = (updates: DeliveryStatusUpdate[]) => [
  updates.map((u) => u.requestId),
  updates.map((u) => u.userId),
  updates.map((u) => u.status),
  updates.map((u) => u.attempt),
  updates.map((u) => u.errorClass),
  updates.map((u) => u.smtpMessageId),
  updates.map((u) => u.eventId),
  updates.map((u) => u.occurredAt),
  updates.map((u) => u.at),
  updates.map((u) => u.generation),
  updates.map((u) => u.provider),
  updates.map((u) => u.nextAttemptAt),
];
const UPDATES_FROM = `unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::uuid[],
                             $8::timestamptz[], $9::timestamptz[], $10::int[], $11::text[], $12::timestamptz[])
  AS u(request_id, user_id, status, attempt, error_class, smtp_message_id, last_event_id, event_occurred_at,
       updated_at, generation, provider, next_attempt_at)`;

/** Inserts statuses for requests that have none; returns the request ids inserted (a conflict inserts nothing). */
export async function insertDeliveryStatusesIfAbsent(
  db: Queryable,
  updates: DeliveryStatusUpdate[],
): Promise<Set<string>> {
  if (updates.length === 0) return new Set();
  const { rows } = await db.query<{ request_id: string }>({
    name: 'accounts-insert-delivery-statuses',
    text: `INSERT INTO mail_delivery_status (request_id, user_id, status, attempt, error_class, smtp_message_id,
                                             last_event_id, event_occurred_at, updated_at, generation,
                                             provider, next_attempt_at)
           SELECT * FROM ${UPDATES_FROM} ON CONFLICT (request_id) DO NOTHING RETURNING request_id`,
    values: updateColumns(updates),
  });
  return new Set(rows.map((r) => r.request_id));
}

/** Overwrites the stored statuses of these requests (the caller decided each one supersedes what is stored). */
export async function updateDeliveryStatuses(db: Queryable, updates: DeliveryStatusUpdate[]): Promise<void> {
  if (updates.length === 0) return;
  await db.query({
    name: 'accounts-update-delivery-statuses',
    text: `UPDATE mail_delivery_status m
              SET status = u.status, attempt = u.attempt, error_class = u.error_class,
                  smtp_message_id = coalesce(u.smtp_message_id, m.smtp_message_id),
                  last_event_id = u.last_event_id, event_occurred_at = u.event_occurred_at, updated_at = u.updated_at,
                  generation = u.generation,
                  provider = coalesce(u.provider, m.provider), next_attempt_at = u.next_attempt_at
             FROM ${UPDATES_FROM}
            WHERE m.request_id = u.request_id`,
    values: updateColumns(updates),
  });
}
