import type { Pool, PoolClient } from '@shared/db';
import type { MailRequestedPayload } from '@shared/events';

export type NewRequest = {
  requestId: string;
  eventId: string;
  userId: string;
  recipient: string;
  template: string;
  vars: MailRequestedPayload['vars'];
  requestedAt: string | null;
  original: string;
};

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

type ClaimedRow = {
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

export type RecordedRequests = {
  /** Rows inserted or reset to pending: both are now waiting to be sent. */
  recorded: string[];
  /** Of those, the `failed` rows a replay (same request_id, new envelope id) reset to pending. */
  replayed: string[];
  /**
   * Whether `supersedeOlderUnsent` has anything to do for these rows: a user of the batch has an older
   * `pending` request, or two requests in it. Almost never: the intake then skips that statement.
   */
  replacesOlder: boolean;
};

/**
 * Records requests not seen before. A redelivered request (same request_id and envelope id) is
 * ignored. A replay from the DLQ (scripts/replay-dlq.ts: same request_id, a NEW envelope id) of a
 * request that ended `failed` resets that row to `pending` with fresh attempts, unless the user has a
 * newer request (its code replaced this one). `sent` and `superseded` rows are never reset.
 */
export async function recordRequests(client: PoolClient, requests: NewRequest[]): Promise<RecordedRequests> {
  // One statement must not touch a row twice (ON CONFLICT DO UPDATE refuses): a request redelivered
  // within the batch is kept once.
  const seen = new Set<string>();
  const unique = requests.filter((r) => !seen.has(r.requestId) && seen.add(r.requestId));
  if (unique.length === 0) return { recorded: [], replayed: [], replacesOlder: false };
  const { rows } = await client.query<{
    request_id: string;
    user_id: string;
    inserted: boolean;
    older_pending: boolean;
  }>({
    name: 'mailer-record-requests',
    text: `INSERT INTO mailer_requests AS m (request_id, event_id, user_id, recipient, template, vars, requested_at, original)
     SELECT r.request_id, r.event_id, r.user_id, r.recipient, r.template, r.vars, r.requested_at, r.original
     FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::text[])
          WITH ORDINALITY AS r(request_id, event_id, user_id, recipient, template, vars, requested_at, original, ord)
     ORDER BY r.ord
     ON CONFLICT (request_id) DO UPDATE
        SET event_id = EXCLUDED.event_id, recipient = EXCLUDED.recipient, template = EXCLUDED.template,
            vars = EXCLUDED.vars, requested_at = EXCLUDED.requested_at, original = EXCLUDED.original,
            state = 'pending', attempts = 0, generation = m.generation + 1, next_attempt_at = now(),
            lease_until = NULL, claim_id = NULL, possible_duplicate = false, last_error_class = NULL,
            smtp_message_id = NULL, sent_at = NULL, updated_at = now()
      WHERE m.state = 'failed' AND m.event_id <> EXCLUDED.event_id
        AND NOT EXISTS (SELECT 1 FROM mailer_requests n WHERE n.user_id = m.user_id AND n.seq > m.seq)
     RETURNING m.request_id, m.user_id, (m.xmax = 0) AS inserted,
               EXISTS (SELECT 1 FROM mailer_requests o
                        WHERE o.user_id = m.user_id AND o.seq < m.seq AND o.state = 'pending') AS older_pending`,
    values: [
      unique.map((r) => r.requestId),
      unique.map((r) => r.eventId),
      unique.map((r) => r.userId),
      unique.map((r) => r.recipient),
      unique.map((r) => r.template),
      unique.map((r) => JSON.stringify(r.vars)),
      unique.map((r) => r.requestedAt),
      unique.map((r) => r.original),
    ],
  });
  // The EXISTS reads the statement's snapshot: rows this statement inserted are not in it, hence the
  // second test (two requests of one user in the batch).
  const users = new Set(rows.map((r) => r.user_id));
  return {
    recorded: rows.map((r) => r.request_id),
    replayed: rows.filter((r) => !r.inserted).map((r) => r.request_id),
    replacesOlder: users.size < rows.length || rows.some((r) => r.older_pending),
  };
}

export type SupersededRequest = { requestId: string; userId: string; attempts: number; generation: number };

/**
 * On every terminal transition (sent, failed, superseded) the plaintext confirmation code leaves the
 * row: `vars` loses `code` and `original` (the Kafka value, code included) is emptied. A DLQ record
 * is built from the claim in memory before the row turns `failed`, so it still carries the original.
 */
export const REDACT = `vars = vars - 'code', original = ''`;
export const HAS_NEWER = `EXISTS (SELECT 1 FROM mailer_requests n WHERE n.user_id = r.user_id AND n.seq > r.seq)`;

/**
 * A newer request of a user replaces that user's older requests still waiting to be sent. Rows in
 * `sending` are in SMTP's hands and cannot be recalled; if such a send then fails, `markDeferred`
 * supersedes it instead of retrying.
 */
export async function supersedeOlderUnsent(client: PoolClient, newRequestIds: string[]): Promise<SupersededRequest[]> {
  if (newRequestIds.length === 0) return [];
  const { rows } = await client.query<{ request_id: string; user_id: string; attempts: number; generation: number }>({
    name: 'mailer-supersede-older-unsent',
    text: `UPDATE mailer_requests r
        SET state = 'superseded', next_attempt_at = now(), updated_at = now(), ${REDACT}
       FROM (SELECT user_id, max(seq) AS newest FROM mailer_requests
              WHERE request_id = ANY($1::uuid[]) GROUP BY user_id) n
      WHERE r.user_id = n.user_id AND r.seq < n.newest AND r.state = 'pending'
     RETURNING r.request_id, r.user_id, r.attempts, r.generation`,
    values: [newRequestIds],
  });
  return rows.map((r) => ({
    requestId: r.request_id,
    userId: r.user_id,
    attempts: r.attempts,
    generation: r.generation,
  }));
}

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
             WHERE (state = 'pending' AND next_attempt_at <= now())
                OR (state = 'sending' AND lease_until <= now())
             ORDER BY next_attempt_at
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
     RETURNING r.request_id, r.user_id, r.recipient, r.template, r.vars, r.requested_at, r.received_at, r.original,
               r.attempts, r.generation, r.claim_id, r.possible_duplicate`,
    values: [opts.limit, opts.leaseMs],
  });
  return rows.map((r) => ({
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
  }));
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
    `SELECT count(*) AS n FROM mailer_requests WHERE state = 'pending' AND attempts > 0`,
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
             WHERE state = 'pending' AND next_attempt_at <= now()
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
