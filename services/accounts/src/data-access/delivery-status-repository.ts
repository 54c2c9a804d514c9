import type { DeliveryStatus, ErrorClass } from '@shared/events';
import type { Queryable } from './queryable';

export type DeliveryStatusRow = {
  request_id: string;
  user_id: string;
  status: DeliveryStatus;
  attempt: number;
  error_class: ErrorClass | null;
  updated_at: Date;
};

export async function insertQueuedDeliveryStatus(db: Queryable, s: { requestId: string; userId: string; at: Date }): Promise<void> {
  await db.query({
    name: 'accounts-insert-queued-status',
    text: `INSERT INTO mail_delivery_status (request_id, user_id, status, attempt, updated_at) VALUES ($1, $2, 'queued', 0, $3)`,
    values: [s.requestId, s.userId, s.at],
  });
}

export async function findDeliveryStatus(db: Queryable, requestId: string): Promise<DeliveryStatusRow | null> {
  const { rows } = await db.query<DeliveryStatusRow>(
    `SELECT request_id, user_id, status, attempt, error_class, updated_at FROM mail_delivery_status WHERE request_id = $1`,
    [requestId],
  );
  return rows[0] ?? null;
}

/** The delivery status of the user's newest confirmation request (null before any request). */
export async function findNewestRequestStatus(db: Queryable, userId: string): Promise<DeliveryStatusRow | null> {
  const { rows } = await db.query<DeliveryStatusRow>(
    `SELECT ec.request_id, ec.user_id, coalesce(mds.status, 'queued') AS status, coalesce(mds.attempt, 0) AS attempt,
            mds.error_class, coalesce(mds.updated_at, ec.created_at) AS updated_at
       FROM email_confirmations ec
       LEFT JOIN mail_delivery_status mds ON mds.request_id = ec.request_id
      WHERE ec.user_id = $1 ORDER BY ec.created_at DESC LIMIT 1`,
    [userId],
  );
  return rows[0] ?? null;
}

export async function lockDeliveryStatus(db: Queryable, requestId: string): Promise<DeliveryStatusRow | null> {
  const { rows } = await db.query<DeliveryStatusRow>(
    `SELECT request_id, user_id, status, attempt, error_class, updated_at FROM mail_delivery_status WHERE request_id = $1 FOR UPDATE`,
    [requestId],
  );
  return rows[0] ?? null;
}

export type DeliveryStatusUpdate = {
  requestId: string;
  userId: string;
  status: DeliveryStatus;
  attempt: number;
  errorClass: ErrorClass | null;
  smtpMessageId: string | null;
  eventId: string;
  occurredAt: string;
  at: Date;
};

/** Inserts the status, or does nothing when a row for the request already exists (then lock and compare). */
export async function insertDeliveryStatusIfAbsent(db: Queryable, u: DeliveryStatusUpdate): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO mail_delivery_status (request_id, user_id, status, attempt, error_class, smtp_message_id, last_event_id, event_occurred_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (request_id) DO NOTHING`,
    [u.requestId, u.userId, u.status, u.attempt, u.errorClass, u.smtpMessageId, u.eventId, u.occurredAt, u.at],
  );
  return rowCount === 1;
}

export async function updateDeliveryStatus(db: Queryable, u: DeliveryStatusUpdate): Promise<void> {
  await db.query(
    `UPDATE mail_delivery_status
        SET status = $2, attempt = $3, error_class = $4, smtp_message_id = coalesce($5, smtp_message_id),
            last_event_id = $6, event_occurred_at = $7, updated_at = $8
      WHERE request_id = $1`,
    [u.requestId, u.status, u.attempt, u.errorClass, u.smtpMessageId, u.eventId, u.occurredAt, u.at],
  );
}

/** Records that `consumer` applied `eventId`; false when it already had (a duplicate delivery). */
export async function markEventProcessed(db: Queryable, consumer: string, eventId: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO processed_events (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
    [consumer, eventId],
  );
  return rowCount === 1;
}
