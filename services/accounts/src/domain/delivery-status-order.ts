import type { DeliveryStatus } from '@shared/events';

/** `generation`: the DLQ replay generation (absent = 0, the original delivery). */
export type StatusVersion = { status: DeliveryStatus; attempt: number; generation?: number | undefined };

const FINAL: ReadonlySet<DeliveryStatus> = new Set(['sent', 'failed']);
const PRECEDENCE: Record<DeliveryStatus, number> = { queued: 0, deferred: 1, sent: 2, failed: 2 };

export const isFinalStatus = (status: DeliveryStatus): boolean => FINAL.has(status);

/**
 * The ordering rule for delivery statuses, which may arrive duplicated or out of order
 * (at-least-once, retries, several mailer instances):
 *  0. a higher replay `generation` wins, whatever the statuses (a DLQ replay starts the delivery over:
 *     its `sent` at attempt 1 replaces the `failed` at attempt N); a lower one never does;
 *  1. within a generation, a final status (sent, failed) is never replaced by a non-final one (queued, deferred);
 *  2. otherwise the higher `attempt` wins;
 *  3. at equal attempt, final beats deferred beats queued; an exact tie keeps what is stored.
 * So the stored state only moves forward, and replaying any prefix of the stream changes nothing.
 */
export function supersedes(incoming: StatusVersion, current: StatusVersion): boolean {
  const incomingGeneration = incoming.generation ?? 0;
  const currentGeneration = current.generation ?? 0;
  if (incomingGeneration !== currentGeneration) return incomingGeneration > currentGeneration;
  if (isFinalStatus(current.status) && !isFinalStatus(incoming.status)) return false;
  if (incoming.attempt !== current.attempt) return incoming.attempt > current.attempt;
  return PRECEDENCE[incoming.status] > PRECEDENCE[current.status];
}
