import type { PoolClient } from '@shared/db';
import type { ErrorClass } from '@shared/events';
import { HAS_NEWER, REDACT, type ClaimedRequest } from './requests-repository';

/* The outcome of one claimed attempt: each update holds only while the claim does (state `sending`, same claim_id). */

/** SMTP accepted the mail. False when the claim was lost (lease expired and another instance took it). */
export async function markSent(
  client: PoolClient,
  claim: Pick<ClaimedRequest, 'requestId' | 'claimId'>,
  smtpMessageId: string,
  /** A provider tried before the one that accepted may have taken the mail too (a failure after the body). */
  possibleDuplicate = false,
): Promise<boolean> {
  const { rowCount } = await client.query(
    `UPDATE mailer_requests
        SET state = 'sent', smtp_message_id = $3, sent_at = now(), lease_until = NULL, last_error_class = NULL,
            possible_duplicate = possible_duplicate OR $4, updated_at = now(), ${REDACT}
      WHERE request_id = $1 AND claim_id = $2 AND state = 'sending'`,
    [claim.requestId, claim.claimId, smtpMessageId, possibleDuplicate],
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
    `UPDATE mailer_requests
        SET state = 'failed', last_error_class = $3, lease_until = NULL, updated_at = now(), ${REDACT}
      WHERE request_id = $1 AND claim_id = $2 AND state = 'sending'`,
    [claim.requestId, claim.claimId, errorClass],
  );
  return rowCount === 1;
}
