import type { Pool, PoolClient } from '@shared/db';
import type { ErrorClass, MailRequestedPayload } from '@shared/events';

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
  if (unique.length === 0) return { recorded: [], replayed: [] };
  const { rows } = await client.query<{ request_id: string; inserted: boolean }>(
    `INSERT INTO mailer_requests AS m (request_id, event_id, user_id, recipient, template, vars, requested_at, original)
     SELECT r.request_id, r.event_id, r.user_id, r.recipient, r.template, r.vars, r.requested_at, r.original
     FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::text[])
          WITH ORDINALITY AS r(request_id, event_id, user_id, recipient, template, vars, requested_at, original, ord)
     ORDER BY r.ord
     ON CONFLICT (request_id) DO UPDATE
        SET event_id = EXCLUDED.event_id, recipient = EXCLUDED.recipient, template = EXCLUDED.template, vars = EXCLUDED.vars,
            requested_at = EXCLUDED.requested_at, original = EXCLUDED.original,
            state = 'pending', attempts = 0, generation = m.generation + 1, next_attempt_at = now(), lease_until = NULL, claim_id = NULL,
            possible_duplicate = false, last_error_class = NULL, smtp_message_id = NULL, sent_at = NULL, updated_at = now()
      WHERE m.state = 'failed' AND m.event_id <> EXCLUDED.event_id
        AND NOT EXISTS (SELECT 1 FROM mailer_requests n WHERE n.user_id = m.user_id AND n.seq > m.seq)
     RETURNING m.request_id, (m.xmax = 0) AS inserted`,
    [
      unique.map((r) => r.requestId),
      unique.map((r) => r.eventId),
      unique.map((r) => r.userId),
      unique.map((r) => r.recipient),
      unique.map((r) => r.template),
      unique.map((r) => JSON.stringify(r.vars)),
      unique.map((r) => r.requestedAt),
      unique.map((r) => r.original),
    ],
  );
  return {
    recorded: rows.map((r) => r.request_id),
    replayed: rows.filter((r) => !r.inserted).map((r) => r.request_id),
  };
}

export type SupersededRequest = { requestId: string; userId: string; attempts: number; generation: number };

/**
 * On every terminal transition (sent, failed, superseded) the plaintext confirmation code leaves the
 * row: `vars` loses `code` and `original` (the Kafka value, code included) is emptied. A DLQ record
 * is built from the claim in memory before the row turns `failed`, so it still carries the original.
 */
const REDACT = `vars = vars - 'code', original = ''`;
const HAS_NEWER = `EXISTS (SELECT 1 FROM mailer_requests n WHERE n.user_id = r.user_id AND n.seq > r.seq)`;

/**
 * A newer request of a user replaces that user's older requests still waiting to be sent. Rows in
 * `sending` are in SMTP's hands and cannot be recalled; if such a send then fails, `markDeferred`
 * supersedes it instead of retrying.
 */
export async function supersedeOlderUnsent(client: PoolClient, newRequestIds: string[]): Promise<SupersededRequest[]> {
  if (newRequestIds.length === 0) return [];
  const { rows } = await client.query<{ request_id: string; user_id: string; attempts: number; generation: number }>(
    `UPDATE mailer_requests r
        SET state = 'superseded', next_attempt_at = now(), updated_at = now(), ${REDACT}
       FROM (SELECT user_id, max(seq) AS newest FROM mailer_requests WHERE request_id = ANY($1::uuid[]) GROUP BY user_id) n
      WHERE r.user_id = n.user_id AND r.seq < n.newest AND r.state = 'pending'
     RETURNING r.request_id, r.user_id, r.attempts, r.generation`,
    [newRequestIds],
  );
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
  const { rows } = await pool.query<ClaimedRow>(
    `UPDATE mailer_requests r
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
    [opts.limit, opts.leaseMs],
  );
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

/** SMTP accepted the mail. False when the claim was lost (lease expired and another instance took it). */
export async function markSent(
  client: PoolClient,
  claim: Pick<ClaimedRequest, 'requestId' | 'claimId'>,
  smtpMessageId: string,
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE mailer_requests
        SET state = 'sent', smtp_message_id = $3, sent_at = now(), lease_until = NULL, last_error_class = NULL, updated_at = now(), ${REDACT}
      WHERE request_id = $1 AND claim_id = $2 AND state = 'sending'`,
    [claim.requestId, claim.claimId, smtpMessageId],
  );
  return rowCount === 1;
}

/**
 * Schedules a retry after `delayMs`. An attempt the breaker refused never reached SMTP and is given
 * back (`consumeAttempt: false`). If a newer request of the same user arrived meanwhile, the row is
 * superseded instead of retried. Returns the row's new state and attempts, or null if the claim was lost.
 */
export async function markDeferred(
  client: PoolClient,
  claim: Pick<ClaimedRequest, 'requestId' | 'claimId'>,
  opts: { errorClass: ErrorClass; delayMs: number; consumeAttempt: boolean; mayHaveBeenAccepted?: boolean },
): Promise<{ state: 'pending' | 'superseded'; attempts: number } | null> {
  const { rows } = await client.query<{ state: 'pending' | 'superseded'; attempts: number }>(
    `UPDATE mailer_requests r
        SET state = CASE WHEN ${HAS_NEWER} THEN 'superseded' ELSE 'pending' END,
            vars = CASE WHEN ${HAS_NEWER} THEN r.vars - 'code' ELSE r.vars END,
            original = CASE WHEN ${HAS_NEWER} THEN '' ELSE r.original END,
            possible_duplicate = r.possible_duplicate OR $6,
            attempts = CASE WHEN $5 THEN r.attempts ELSE r.attempts - 1 END,
            next_attempt_at = now() + make_interval(secs => $4::double precision / 1000),
            last_error_class = $3,
            lease_until = NULL,
            updated_at = now()
      WHERE r.request_id = $1 AND r.claim_id = $2 AND r.state = 'sending'
     RETURNING r.state, r.attempts`,
    [
      claim.requestId,
      claim.claimId,
      opts.errorClass,
      opts.delayMs,
      opts.consumeAttempt,
      opts.mayHaveBeenAccepted ?? false,
    ],
  );
  return rows[0] ?? null;
}

/** Rejected permanently or out of attempts. False when the claim was lost. */
export async function markFailed(
  client: PoolClient,
  claim: Pick<ClaimedRequest, 'requestId' | 'claimId'>,
  errorClass: ErrorClass,
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE mailer_requests SET state = 'failed', last_error_class = $3, lease_until = NULL, updated_at = now(), ${REDACT}
      WHERE request_id = $1 AND claim_id = $2 AND state = 'sending'`,
    [claim.requestId, claim.claimId, errorClass],
  );
  return rowCount === 1;
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
    `SELECT to_regclass('public.mailer_requests') IS NOT NULL AND to_regclass('public.mailer_outbox') IS NOT NULL AS ok`,
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
        SET next_attempt_at = greatest($1::timestamptz, now() + interval '1 second'), last_error_class = 'circuit_open', updated_at = now()
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
