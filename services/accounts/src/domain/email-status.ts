import { readConfirmationHistory } from '../data-access/confirmations-repository';
import { findNewestRequestStatus } from '../data-access/delivery-status-repository';
import { findUserById } from '../data-access/users-repository';
import type { DeliveryStatus, ErrorClass } from '@shared/events';
import { deliveryMessage } from './delivery-message';
import type { DomainDeps } from './deps';
import { InvalidTokenError } from './errors';
import { decideResend } from './resend-policy';

export type EmailStatus = {
  email_confirmed: boolean;
  last_request: {
    request_id: string;
    status: DeliveryStatus;
    attempts: number;
    error_class: ErrorClass | null;
    updated_at: string;
    /** Human-readable status and class (never raw SMTP text). */
    message: string;
    /** While deferred: when the mailer tries again. */
    next_attempt_at?: string;
    /** Once sent: the SMTP provider's label. */
    provider?: string;
  } | null;
  can_resend: boolean;
  retry_after_s: number;
};

/** The confirmation state as the user sees it, from the consumed delivery status and the resend policy. */
export function createEmailStatus(deps: DomainDeps) {
  const limits = { cooldownS: deps.config.RESEND_COOLDOWN_S, maxPerHour: deps.config.RESEND_MAX_PER_HOUR };
  return async function emailStatus(userId: string): Promise<EmailStatus> {
    const user = await findUserById(deps.pool, userId);
    if (!user) throw new InvalidTokenError();
    const now = deps.clock.now();
    const [last, history] = await Promise.all([
      findNewestRequestStatus(deps.pool, userId),
      readConfirmationHistory(deps.pool, userId, now),
    ]);
    const confirmed = user.email_confirmed_at !== null;
    const decision = decideResend(history, limits, now);
    return {
      email_confirmed: confirmed,
      last_request: last
        ? {
            request_id: last.request_id,
            status: last.status,
            attempts: last.attempt,
            error_class: last.error_class,
            updated_at: last.updated_at.toISOString(),
            message: deliveryMessage(
              { status: last.status, errorClass: last.error_class, nextAttemptAt: last.next_attempt_at },
              now,
            ),
            ...(last.status === 'deferred' && last.next_attempt_at
              ? { next_attempt_at: last.next_attempt_at.toISOString() }
              : {}),
            ...(last.status === 'sent' && last.provider ? { provider: last.provider } : {}),
          }
        : null,
      can_resend: !confirmed && decision.allowed,
      retry_after_s: confirmed || decision.allowed ? 0 : decision.retryAfterS,
    };
  };
}
