import type { Pool, PoolClient } from '@shared/db';
import type { MailRequestedPayload } from '@shared/events';

export type ClaimedRequest = {
  requestId: string;
  userId: string;
  recipient: string;
  template: string;
  vars: MailRequestedPayload['vars'];
  requestedAt: Date | null;
  receivedAt: Date;
  original: string;
  /** This attempt's number (1-based). */
  attempts: number;
  /** DLQ replay generation (0: the original delivery); carried in every status of this delivery. */
  generation: number;
  claimId: string;
  /** Once claimed from an expired lease (a mailer died while SMTP had it): a send now may duplicate. */
  possibleDuplicate: boolean;
};

export type ClaimedRow = {
  request_id: string;
  user_id: string;
  recipient: string;
  template: string;
  vars: MailRequestedPayload['vars'];
  requested_at: Date | null;
  received_at: Date;
  original: string;
  attempts: number;
  generation: number;
  claim_id: string;
  possible_duplicate: boolean;
};

/**
 * On every terminal transition (sent, failed, superseded) the plaintext confirmation code leaves the
 * row: `vars` loses `code` and `original` (the Kafka value, code included) is emptied. A DLQ record
 * is built from the claim in memory before the row turns `failed`, so it still carries the original.
 */
export const REDACT = `vars = vars - 'code', original = ''`;
export const HAS_NEWER = `EXISTS (SELECT 1 FROM mailer_requests n WHERE n.user_id = r.user_id AND n.seq > r.seq)`;

/**
 * The predicate terms that make the inbox's partial indexes usable (migration
 * 20261126070000000): only statements that say them can use those indexes, so no other statement
 * scans a whole partial index a stale planner believes empty.
 */
export const DUE_INDEX = `next_attempt_at > '-infinity'`;
export const USER_UNSENT_INDEX = (alias: string): string => `${alias}.seq > 0`;

/** A ClaimedRow's columns. */
const CLAIMED = [
  ...['request_id', 'user_id', 'recipient', 'template', 'vars', 'requested_at', 'received_at', 'original'],
  ...['attempts', 'generation', 'claim_id', 'possible_duplicate'],
];

/** The columns a claim returns (a ClaimedRow), each qualified with `prefix`. */
export const CLAIMED_COLUMNS = (prefix = ''): string => CLAIMED.map((c) => prefix + c).join(', ');

export const toClaimedRequest = (r: ClaimedRow): ClaimedRequest => ({
  requestId: r.request_id,
  userId: r.user_id,
  recipient: r.recipient,
  template: r.template,
  vars: r.vars,
  requestedAt: r.requested_at,
  receivedAt: r.received_at,
  original: r.original,
  attempts: r.attempts,
  generation: r.generation,
  claimId: r.claim_id,
  possibleDuplicate: r.possible_duplicate,
});

/**
 * Claims due rows for sending and marks them `sending` BEFORE any SMTP call, under a lease. SKIP
 * LOCKED lets several mailer instances claim side by side without taking the same row. A row still
 * `sending` after its lease belongs to a dead mailer: it is claimed again as the same attempt.
 */
export async function claimDueRequests(
  pool: Pool,
  opts: { limit: number; leaseMs: number },
): Promise<ClaimedRequest[]> {
  const { rows } = await pool.query<ClaimedRow>({
    name: 'mailer-claim-due',
    text: `UPDATE mailer_requests r
        SET possible_duplicate = r.possible_duplicate OR r.state = 'sending',
            attempts = CASE WHEN r.state = 'sending' THEN r.attempts ELSE r.attempts + 1 END,
            state = 'sending',
            lease_until = now() + make_interval(secs => $2::double precision / 1000),
            claim_id = gen_random_uuid(),
            updated_at = now()
      WHERE r.request_id IN (
            SELECT request_id FROM mailer_requests
             WHERE ((state = 'pending' AND next_attempt_at <= now())
                OR (state = 'sending' AND lease_until <= now())) AND ${DUE_INDEX}
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
     RETURNING ${CLAIMED_COLUMNS('r.')}`,
    values: [opts.limit, opts.leaseMs],
  });
  return rows.map(toClaimedRequest);
}

/**
 * Retention: deletes terminal rows (sent, failed, superseded) last updated more than `olderThanDays`
 * ago, `batchSize` rows per statement so no statement holds many locks or a long transaction.
 * Returns how many rows went.
 */
export async function deleteExpiredRequests(
  pool: Pool,
  opts: { olderThanDays: number; batchSize?: number },
): Promise<number> {
  const batchSize = opts.batchSize ?? 1_000;
  let total = 0;
  for (;;) {
    const { rowCount } = await pool.query(
      `DELETE FROM mailer_requests
        WHERE request_id IN (
              SELECT request_id FROM mailer_requests
               WHERE state IN ('sent', 'failed', 'superseded') AND updated_at < now() - make_interval(days => $1)
               LIMIT $2
               FOR UPDATE SKIP LOCKED)`,
      [opts.olderThanDays, batchSize],
    );
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < batchSize) return total;
  }
}

export async function countRetryPending(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(
    `SELECT count(*) AS n FROM mailer_requests WHERE state = 'pending' AND attempts > 0 AND ${DUE_INDEX}`,
  );
  return Number(rows[0]?.n ?? 0);
}

/** Readiness: the mailer's own tables exist (its migration ran). */
export async function checkMailerSchema(pool: Pool): Promise<void> {
  const { rows } = await pool.query<{ ok: boolean }>(
    `SELECT to_regclass('public.mailer_requests') IS NOT NULL
        AND to_regclass('public.mailer_outbox') IS NOT NULL AS ok`,
  );
  if (!rows[0]?.ok) throw new Error('mailer tables are missing: run the migrations');
}

/**
 * While no SMTP provider admits mail: due pending rows get their next attempt at `until` (when a
 * breaker lets its trial through) without using an attempt. Returns them, for their `deferred` statuses.
 */
export async function deferDueRequests(
  client: PoolClient,
  opts: { until: Date; limit: number },
): Promise<{ requestId: string; userId: string; attempts: number; generation: number }[]> {
  const { rows } = await client.query<{ request_id: string; user_id: string; attempts: number; generation: number }>(
    `UPDATE mailer_requests r
        SET next_attempt_at = greatest($1::timestamptz, now() + interval '1 second'),
            last_error_class = 'circuit_open', updated_at = now()
      WHERE r.request_id IN (
            SELECT request_id FROM mailer_requests
             WHERE state = 'pending' AND next_attempt_at <= now() AND ${DUE_INDEX}
             ORDER BY next_attempt_at
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
     RETURNING r.request_id, r.user_id, r.attempts, r.generation`,
    [opts.until, opts.limit],
  );
  return rows.map((r) => ({
    requestId: r.request_id,
    userId: r.user_id,
    attempts: r.attempts,
    generation: r.generation,
  }));
}
