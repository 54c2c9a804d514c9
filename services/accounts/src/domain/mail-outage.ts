import type { MailDeliveryStatusPayload } from '@shared/events';
import type { Clock } from './clock';

/** How long a circuit_open status without a next attempt time counts as a known outage. */
const DEFAULT_OUTAGE_MS = 30_000;

export type MailOutage = {
  /** Feeds every consumed delivery status (in any order; older events than the last one seen are ignored). */
  observe: (
    status: Pick<MailDeliveryStatusPayload, 'status' | 'error_class' | 'next_attempt_at'>,
    occurredAt?: string,
  ) => void;
  /** Every mail provider's breaker is open, as far as this instance knows: no registration waits for mail. */
  known: () => boolean;
  /** When the mailer will next try (while known). */
  until: () => Date | undefined;
};

/**
 * What this accounts instance knows of a mail outage, learnt from the delivery statuses it consumes:
 * the mailer publishes `deferred` / `circuit_open` (with the next trial time) only while no SMTP
 * provider's breaker admits mail, so such a status starts a known outage until that time, and any
 * `sent` ends it. No extra query, no call to the mailer; the trade-off: an instance sees only the
 * partitions it consumes, and a registration right at the end of an outage may skip a wait that
 * would have succeeded (it then answers `queued`, which is true).
 */
export function createMailOutage(clock: Clock): MailOutage {
  let outageUntil: Date | undefined;
  let lastSeen = 0;
  return {
    observe: (status, occurredAt) => {
      const at = occurredAt ? Date.parse(occurredAt) : clock.now().getTime();
      if (at < lastSeen) return;
      lastSeen = at;
      if (status.status === 'deferred' && status.error_class === 'circuit_open') {
        const next = status.next_attempt_at ? new Date(status.next_attempt_at) : new Date(at + DEFAULT_OUTAGE_MS);
        outageUntil = next;
      } else if (status.status === 'sent') {
        outageUntil = undefined;
      }
    },
    known: () => outageUntil !== undefined && clock.now().getTime() < outageUntil.getTime(),
    until: () => outageUntil,
  };
}
