import { setTimeout as sleep } from 'node:timers/promises';
import { findDeliveryStatus, type DeliveryStatusRow } from '../data-access/delivery-status-repository';
import type { DomainDeps } from './deps';
import { isFinalStatus } from './delivery-status-order';

const POLL_INTERVAL_MS = 100;

/**
 * For `Prefer: wait=N`: polls the request's delivery status (one primary-key read per 100 ms) until it
 * is final or `waitS` passed, and returns the last status seen. Polling rather than LISTEN: no
 * dedicated connection per waiting request, and the wait is short and opt-in.
 */
export type WaitedStatus = Pick<DeliveryStatusRow, 'status' | 'error_class' | 'next_attempt_at'>;

/**
 * It also ends at once when the mail cannot go out now: the request's own status is `deferred`, or
 * every mail provider's breaker is known to be open (never wait on a known outage).
 */
export function createWaitForDelivery(deps: Pick<DomainDeps, 'pool'> & Partial<Pick<DomainDeps, 'mailOutage'>>) {
  return async function waitForDelivery(
    requestId: string,
    waitMs: number,
    signal?: AbortSignal,
  ): Promise<WaitedStatus> {
    const deadline = Date.now() + waitMs;
    let status: WaitedStatus = { status: 'queued', error_class: null, next_attempt_at: null };
    for (;;) {
      if (deps.mailOutage?.known()) return status;
      status = (await findDeliveryStatus(deps.pool, requestId)) ?? status;
      const done = isFinalStatus(status.status) || status.status === 'deferred';
      if (done || Date.now() >= deadline || signal?.aborted) return status;
      await sleep(Math.min(POLL_INTERVAL_MS, Math.max(0, deadline - Date.now())));
    }
  };
}
