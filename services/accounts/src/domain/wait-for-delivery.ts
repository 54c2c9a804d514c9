import { setTimeout as sleep } from 'node:timers/promises';
import type { DeliveryStatus } from '@shared/events';
import { findDeliveryStatus } from '../data-access/delivery-status-repository';
import type { DomainDeps } from './deps';
import { isFinalStatus } from './delivery-status-order';

const POLL_INTERVAL_MS = 100;

/**
 * For `Prefer: wait=N`: polls the request's delivery status (one primary-key read per 100 ms) until it
 * is final or `waitS` passed, and returns the last status seen. Polling rather than LISTEN: no
 * dedicated connection per waiting request, and the wait is short and opt-in.
 */
export function createWaitForDelivery(deps: Pick<DomainDeps, 'pool'>) {
  return async function waitForDelivery(requestId: string, waitS: number, signal?: AbortSignal): Promise<DeliveryStatus> {
    const deadline = Date.now() + waitS * 1000;
    let status: DeliveryStatus = 'queued';
    for (;;) {
      status = (await findDeliveryStatus(deps.pool, requestId))?.status ?? status;
      if (isFinalStatus(status) || Date.now() >= deadline || signal?.aborted) return status;
      await sleep(Math.min(POLL_INTERVAL_MS, Math.max(0, deadline - Date.now())));
    }
  };
}
