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
  claim_id: string;
  possible_duplicate: boolean;
};

/** Records requests not seen before (a redelivered request_id is ignored); returns the new ids. */
export async function recordRequests(client: PoolClient, requests: NewRequest[]): Promise<string[]> {
  if (requests.length === 0) return [];
  const { rows } = await client.query<{ request_id: string }>(
    `INSERT INTO mailer_requests (request_id, event_id, user_id, recipient, template, vars, requested_at, original)
     SELECT r.request_id, r.event_id, r.user_id, r.recipient, r.template, r.vars, r.requested_at, r.original
     FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::text[])
          WITH ORDINALITY AS r(request_id, event_id, user_id, recipient, template, vars, requested_at, original, ord)
     ORDER BY r.ord
     ON CONFLICT (request_id) DO NOTHING
     RETURNING request_id`,
    [
      requests.map((r) => r.requestId),
      requests.map((r) => r.eventId),
      requests.map((r) => r.userId),
      requests.map((r) => r.recipient),
      requests.map((r) => r.template),
      requests.map((r) => JSON.stringify(r.vars)),
      requests.map((r) => r.requestedAt),
      requests.map((r) => r.original),
    ],
  );
  return rows.map((r) => r.request_id);
}

export type SupersededRequest = { requestId: string; userId: string; attempts: number };

/**
 * A newer request of a user replaces that user's older requests still waiting to be sent. Rows in
 * `sending` are in SMTP's hands and cannot be recalled; if such a send then fails, `markDeferred`
 * supersedes it instead of retrying.
 */
export async function supersedeOlderUnsent(client: PoolClient, newRequestIds: string[]): Promise<SupersededRequest[]> {
  if (newRequestIds.length === 0) return [];
  const { rows } = await client.query<{ request_id: string; user_id: string; attempts: number }>(
    `UPDATE mailer_requests r
        SET state = 'superseded', next_attempt_at = now(), updated_at = now()
       FROM (SELECT user_id, max(seq) AS newest FROM mailer_requests WHERE request_id = ANY($1::uuid[]) GROUP BY user_id) n
      WHERE r.user_id = n.user_id AND r.seq < n.newest AND r.state = 'pending'
     RETURNING r.request_id, r.user_id, r.attempts`,
    [newRequestIds],
  );
  return rows.map((r) => ({ requestId: r.request_id, userId: r.user_id, attempts: r.attempts }));
}

/**
 * Claims due rows for sending and marks them `sending` BEFORE any SMTP call, under a lease. SKIP
 * LOCKED lets several mailer instances claim side by side without taking the same row. A row still
 * `sending` after its lease belongs to a dead mailer: it is claimed again as the same attempt.
 */
export async function claimDueRequests(pool: Pool, opts: { limit: number; leaseMs: number }): Promise<ClaimedRequest[]> {
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
               r.attempts, r.claim_id, r.possible_duplicate`,
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
    claimId: r.claim_id,
    possibleDuplicate: r.possible_duplicate,
  }));
}

/** SMTP accepted the mail. False when the claim was lost (lease expired and another instance took it). */
export async function markSent(client: PoolClient, claim: Pick<ClaimedRequest, 'requestId' | 'claimId'>, smtpMessageId: string): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE mailer_requests
        SET state = 'sent', smtp_message_id = $3, sent_at = now(), lease_until = NULL, last_error_class = NULL, updated_at = now()
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
        SET state = CASE WHEN EXISTS (SELECT 1 FROM mailer_requests n WHERE n.user_id = r.user_id AND n.seq > r.seq)
                         THEN 'superseded' ELSE 'pending' END,
            possible_duplicate = r.possible_duplicate OR $6,
            attempts = CASE WHEN $5 THEN r.attempts ELSE r.attempts - 1 END,
            next_attempt_at = now() + make_interval(secs => $4::double precision / 1000),
            last_error_class = $3,
            lease_until = NULL,
            updated_at = now()
      WHERE r.request_id = $1 AND r.claim_id = $2 AND r.state = 'sending'
     RETURNING r.state, r.attempts`,
    [claim.requestId, claim.claimId, opts.errorClass, opts.delayMs, opts.consumeAttempt, opts.mayHaveBeenAccepted ?? false],
  );
  return rows[0] ?? null;
}

/** Rejected permanently or out of attempts. False when the claim was lost. */
export async function markFailed(client: PoolClient, claim: Pick<ClaimedRequest, 'requestId' | 'claimId'>, errorClass: ErrorClass): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE mailer_requests SET state = 'failed', last_error_class = $3, lease_until = NULL, updated_at = now()
      WHERE request_id = $1 AND claim_id = $2 AND state = 'sending'`,
    [claim.requestId, claim.claimId, errorClass],
  );
  return rowCount === 1;
}

export async function countRetryPending(pool: Pool): Promise<number> {
  const { rows } = await pool.query<{ n: string }>(`SELECT count(*) AS n FROM mailer_requests WHERE state = 'pending' AND attempts > 0`);
  return Number(rows[0]?.n ?? 0);
}

/** Readiness: the mailer's own tables exist (its migration ran). */
export async function checkMailerSchema(pool: Pool): Promise<void> {
  const { rows } = await pool.query<{ ok: boolean }>(`SELECT to_regclass('public.mailer_requests') IS NOT NULL AND to_regclass('public.mailer_outbox') IS NOT NULL AS ok`);
  if (!rows[0]?.ok) throw new Error('mailer tables are missing: run the migrations');
}
