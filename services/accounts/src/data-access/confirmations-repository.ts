import type { DeliveryStatus } from '@shared/events';
import type { Queryable } from './queryable';

export type PendingConfirmation = { request_id: string; code_hash: string; expires_at: Date; attempts: number };

/** A newer request supersedes every older pending one: only the newest code is ever valid. */
export async function supersedePendingConfirmations(db: Queryable, userId: string): Promise<void> {
  await db.query(`UPDATE email_confirmations SET state = 'superseded' WHERE user_id = $1 AND state = 'pending'`, [
    userId,
  ]);
}

export async function insertConfirmation(
  db: Queryable,
  c: { requestId: string; userId: string; codeHash: string; expiresAt: Date; createdAt: Date },
): Promise<void> {
  await db.query({
    name: 'accounts-insert-confirmation',
    text: `INSERT INTO email_confirmations (request_id, user_id, code_hash, expires_at, created_at)
           VALUES ($1, $2, $3, $4, $5)`,
    values: [c.requestId, c.userId, c.codeHash, c.expiresAt, c.createdAt],
  });
}

export async function lockNewestPendingConfirmation(
  db: Queryable,
  userId: string,
): Promise<PendingConfirmation | null> {
  const { rows } = await db.query<PendingConfirmation>(
    `SELECT request_id, code_hash, expires_at, attempts FROM email_confirmations
      WHERE user_id = $1 AND state = 'pending' ORDER BY created_at DESC LIMIT 1 FOR UPDATE`,
    [userId],
  );
  return rows[0] ?? null;
}

/** Wrong codes of every request of a user created since `since` (superseded ones included). */
export async function countRecentWrongCodes(db: Queryable, userId: string, since: Date): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT coalesce(sum(attempts), 0)::int AS n FROM email_confirmations WHERE user_id = $1 AND created_at > $2`,
    [userId, since],
  );
  return rows[0]?.n ?? 0;
}

export async function countFailedAttempt(db: Queryable, requestId: string): Promise<void> {
  await db.query(`UPDATE email_confirmations SET attempts = attempts + 1 WHERE request_id = $1`, [requestId]);
}

export async function markConfirmationConsumed(db: Queryable, requestId: string, at: Date): Promise<void> {
  await db.query(`UPDATE email_confirmations SET state = 'consumed', consumed_at = $2 WHERE request_id = $1`, [
    requestId,
    at,
  ]);
}

export type ConfirmationHistory = {
  lastRequestAt: Date | null;
  lastStatus: DeliveryStatus | null;
  requestsLastHour: number;
  oldestLastHourAt: Date | null;
};

/** What the resend policy needs: the newest request with its delivery status, and the last hour's count. */
export async function readConfirmationHistory(db: Queryable, userId: string, now: Date): Promise<ConfirmationHistory> {
  const { rows } = await db.query<{
    last_at: Date | null;
    last_status: DeliveryStatus | null;
    hour_count: string;
    hour_oldest: Date | null;
  }>(
    `SELECT last.created_at AS last_at, mds.status AS last_status, hour.count AS hour_count, hour.oldest AS hour_oldest
       FROM (SELECT count(*) AS count, min(created_at) AS oldest FROM email_confirmations
              WHERE user_id = $1 AND created_at > $2::timestamptz - interval '1 hour') hour
       LEFT JOIN LATERAL (SELECT request_id, created_at FROM email_confirmations
              WHERE user_id = $1 ORDER BY created_at DESC LIMIT 1) last ON true
       LEFT JOIN mail_delivery_status mds ON mds.request_id = last.request_id`,
    [userId, now],
  );
  const row = rows[0];
  return {
    lastRequestAt: row?.last_at ?? null,
    lastStatus: row?.last_status ?? null,
    requestsLastHour: Number(row?.hour_count ?? 0),
    oldestLastHourAt: row?.hour_oldest ?? null,
  };
}
