import type { DeliveryStatus } from '@shared/events';
import { deliveryError } from './delivery-message';
import type { DomainDeps } from './deps';
import type { Registration } from './register-user';
import { decideResend } from './resend-policy';
import type { WaitedStatus } from './wait-for-delivery';

export const MESSAGE_SENT = 'Registration successful! Please check your email for confirmation code.';
export const MESSAGE_NOT_SENT = 'Registration successful! Email confirmation will be sent shortly.';

export type EmailInfo = {
  email_sent: false;
  error: string | null;
  can_resend: boolean;
  status: DeliveryStatus;
  retry_after_s: number;
};

/**
 * The 201 body: the current fields plus the original endpoint's (`message` exactly as it was, and
 * `email_info` whenever the mail is not known to be sent). `can_resend` is the resend rules' answer
 * for a user whose only request is this one, so it costs no query.
 */
export function registrationResponse(
  registration: Registration,
  waited: WaitedStatus,
  deps: Pick<DomainDeps, 'config' | 'clock' | 'mailOutage'>,
) {
  const sent = waited.status === 'sent';
  const body = {
    refresh_token: registration.session.refresh_token,
    access_token: registration.session.access_token,
    user_data: registration.user,
    email_confirmation_sent: sent,
    email_confirmation: { request_id: registration.requestId, status: waited.status },
    message: sent ? MESSAGE_SENT : MESSAGE_NOT_SENT,
  };
  if (sent) return body;
  const now = deps.clock.now();
  const decision = decideResend(
    {
      lastRequestAt: registration.createdAt,
      lastStatus: waited.status,
      requestsLastHour: 1,
      oldestLastHourAt: registration.createdAt,
    },
    { cooldownS: deps.config.RESEND_COOLDOWN_S, maxPerHour: deps.config.RESEND_MAX_PER_HOUR },
    now,
  );
  const outageUntil = deps.mailOutage.known() ? deps.mailOutage.until() : undefined;
  const emailInfo: EmailInfo = {
    email_sent: false,
    error: deliveryError(
      { status: waited.status, errorClass: waited.error_class, nextAttemptAt: waited.next_attempt_at },
      now,
      outageUntil,
    ),
    can_resend: decision.allowed,
    status: waited.status,
    retry_after_s: decision.allowed ? 0 : decision.retryAfterS,
  };
  return { ...body, email_info: emailInfo };
}
