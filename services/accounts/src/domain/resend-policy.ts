import type { DeliveryStatus } from '@shared/events';

export type ResendHistory = {
  /** Newest confirmation request of the user (registration or resend), if any. */
  lastRequestAt: Date | null;
  /** Its delivery status as last consumed from mail.delivery-status. */
  lastStatus: DeliveryStatus | null;
  /** Confirmation requests created in the rolling hour before now, and the oldest of them. */
  requestsLastHour: number;
  oldestLastHourAt: Date | null;
};

export type ResendLimits = { cooldownS: number; maxPerHour: number };

export type ResendDecision =
  { allowed: true } | { allowed: false; reason: 'cooldown' | 'hourly_cap'; retryAfterS: number };

const HOUR_MS = 3_600_000;

/**
 * Whether a user may get a new confirmation email now. The hourly cap counts every request
 * (registration included): it bounds the mails one address receives. The cooldown runs from the last
 * request, but a last status of `failed` or `deferred` lifts it: the user did not get that mail, so
 * making them wait for nothing helps no one. Nothing lifts the hourly cap.
 */
export function decideResend(history: ResendHistory, limits: ResendLimits, now: Date): ResendDecision {
  if (history.requestsLastHour >= limits.maxPerHour) {
    const freesAt = (history.oldestLastHourAt?.getTime() ?? now.getTime()) + HOUR_MS;
    return { allowed: false, reason: 'hourly_cap', retryAfterS: secondsUntil(freesAt, now) };
  }
  const deliveryFailed = history.lastStatus === 'failed' || history.lastStatus === 'deferred';
  if (history.lastRequestAt && !deliveryFailed) {
    const cooldownEndsAt = history.lastRequestAt.getTime() + limits.cooldownS * 1000;
    if (cooldownEndsAt > now.getTime())
      return { allowed: false, reason: 'cooldown', retryAfterS: secondsUntil(cooldownEndsAt, now) };
  }
  return { allowed: true };
}

function secondsUntil(atMs: number, now: Date): number {
  return Math.max(1, Math.ceil((atMs - now.getTime()) / 1000));
}
