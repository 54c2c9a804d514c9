import type { DeliveryStatus, ErrorClass } from '@shared/events';

/** "14:05 UTC" (with the date when it is not today, UTC). */
function clockTime(at: Date, now: Date): string {
  const time = `${at.toISOString().slice(11, 16)} UTC`;
  return at.toISOString().slice(0, 10) === now.toISOString().slice(0, 10)
    ? time
    : `${at.toISOString().slice(0, 10)} ${time}`;
}

const REASON: Record<ErrorClass, string> = {
  circuit_open: 'The mail server is not responding',
  timeout: 'The mail server did not answer in time',
  connection: 'The mail server could not be reached',
  auth: 'Our mail service could not log in to the mail server',
  unknown: 'The mail server asked us to try again later',
  rejected: 'The mail server refused the address',
};

/**
 * The human-readable sentence for a delivery status and error class, as /email/status and the
 * register response show it. Built from the class only: raw SMTP text never reaches a client.
 */
export function deliveryMessage(
  s: { status: DeliveryStatus; errorClass: ErrorClass | null; nextAttemptAt?: Date | null },
  now: Date,
): string {
  switch (s.status) {
    case 'sent':
      return 'The confirmation email has been sent. Please check your inbox.';
    case 'queued':
      return 'The confirmation email is queued and will be sent shortly.';
    case 'deferred': {
      const reason = REASON[s.errorClass ?? 'unknown'];
      const when =
        s.nextAttemptAt && s.nextAttemptAt.getTime() > now.getTime()
          ? `at ${clockTime(s.nextAttemptAt, now)}`
          : 'shortly';
      return `${reason}; we will retry automatically ${when}.`;
    }
    case 'failed':
      if (s.errorClass === null) return 'A newer confirmation email replaced this one.';
      if (s.errorClass === 'rejected')
        return 'The mail server refused the address. Check it, or request a new confirmation email.';
      return 'We could not send the confirmation email. You can request a new one.';
  }
}

/** The register response's `email_info.error`: null while simply queued, the reason otherwise. */
export function deliveryError(
  s: { status: DeliveryStatus; errorClass: ErrorClass | null; nextAttemptAt?: Date | null },
  now: Date,
  outageUntil?: Date,
): string | null {
  if (s.status === 'queued') {
    return outageUntil
      ? deliveryMessage({ status: 'deferred', errorClass: 'circuit_open', nextAttemptAt: outageUntil }, now)
      : null;
  }
  return s.status === 'sent' ? null : deliveryMessage(s, now);
}
