import type { Pool, PoolClient } from '@shared/db';
import type { ErrorClass } from '@shared/events';
import type { OutboxEvent } from './mailer-outbox';
import { HAS_NEWER, REDACT, type ClaimedRequest } from './requests-repository';

/* The outcome of one claimed attempt: each update holds only while the claim does (state `sending`, same claim_id). */

/** One accepted mail to mark `sent`, with the status event to store if its claim still holds. */
export type SentMark = {
  requestId: string;
  claimId: string;
  smtpMessageId: string;
  /** A provider tried before the one that accepted may have taken the mail too (a failure after the body). */
  possibleDuplicate: boolean;
  status: OutboxEvent | null;
};

/**
 * SMTP accepted these mails. ONE statement (so one transaction, one commit) marks `sent` every row
 * whose claim still holds and stores the status events of exactly those rows in mailer_outbox.
 * Returns the claim ids it marked; a mark missing from it lost its claim (lease expired, another
 * instance took the row) and got no status.
 */
export async function markSentBatch(db: Pool | PoolClient, marks: SentMark[]): Promise<Set<string>> {
  if (marks.length === 0) return new Set();
  const { rows } = await db.query<{ claim_id: string }>({
    name: 'mailer-mark-sent',
    text: `WITH s AS (
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::boolean[],
                            $5::text[], $6::text[], $7::text[], $8::jsonb[])
         WITH ORDINALITY
           AS s(request_id, claim_id, smtp_message_id, possible_duplicate, topic, key, value, headers, ord)
     ), marked AS (
       UPDATE mailer_requests r
          SET state = 'sent', smtp_message_id = s.smtp_message_id, sent_at = now(), lease_until = NULL,
              last_error_class = NULL, possible_duplicate = r.possible_duplicate OR s.possible_duplicate,
              updated_at = now(), ${REDACT}
         FROM s
        WHERE r.request_id = s.request_id AND r.claim_id = s.claim_id AND r.state = 'sending'
       RETURNING r.claim_id
     ), statuses AS (
       INSERT INTO mailer_outbox (topic, key, value, headers)
       SELECT s.topic, s.key, s.value, s.headers FROM s
        WHERE s.topic IS NOT NULL AND s.claim_id IN (SELECT claim_id FROM marked)
        ORDER BY s.ord
     )
     SELECT claim_id FROM marked`,
    values: [
      marks.map((m) => m.requestId),
      marks.map((m) => m.claimId),
      marks.map((m) => m.smtpMessageId),
      marks.map((m) => m.possibleDuplicate),
      marks.map((m) => m.status?.topic ?? null),
      marks.map((m) => m.status?.key ?? null),
      marks.map((m) => m.status?.value ?? null),
      marks.map((m) => (m.status ? JSON.stringify(m.status.headers) : null)),
    ],
  });
  return new Set(rows.map((r) => r.claim_id));
}

/**
 * Claims never handed to SMTP go back to `pending`, due at once, with the attempt count they will be
 * claimed again as (the claim's increment undone; a row taken over from an expired lease keeps its
 * possible-duplicate flag, so its next claim is again that same, flagged attempt). Only rows whose
 * claim still holds. Returns how many went back.
 */
export async function releaseClaims(
  pool: Pool,
  claims: Pick<ClaimedRequest, 'requestId' | 'claimId'>[],
): Promise<number> {
  if (claims.length === 0) return 0;
  const { rowCount } = await pool.query(
    `UPDATE mailer_requests r
        SET state = 'pending', attempts = r.attempts - 1, lease_until = NULL, claim_id = NULL, updated_at = now()
       FROM unnest($1::uuid[], $2::uuid[]) AS c(request_id, claim_id)
      WHERE r.request_id = c.request_id AND r.claim_id = c.claim_id AND r.state = 'sending'`,
    [claims.map((c) => c.requestId), claims.map((c) => c.claimId)],
  );
  return rowCount ?? 0;
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
    `UPDATE mailer_requests
        SET state = 'failed', last_error_class = $3, lease_until = NULL, updated_at = now(), ${REDACT}
      WHERE request_id = $1 AND claim_id = $2 AND state = 'sending'`,
    [claim.requestId, claim.claimId, errorClass],
  );
  return rowCount === 1;
}
