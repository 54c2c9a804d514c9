import { createRequire } from 'node:module';

/**
 * kafkajs 2.2.4 busy-loops while idle: RequestQueue.scheduleCheckPendingRequests re-arms a timer with a
 * negative delay whenever nothing is pending and nothing is throttled, so every broker connection
 * runs a ~1 ms timer loop for ever (tulios/kafkajs#1556, #1604, #1704; fix proposed in #1667, never
 * released). Measured here: 60-80 CPU ms per second per idle service, the largest idle cost of the
 * stack (docs/performance.md). This replaces that one method with #1667's logic: schedule a check only
 * when a request is pending or the connection is throttled — a pushed request that must wait, and a
 * fulfilled or timed-out request, call it again anyway. Applied once, to the very module instance
 * kafkajs uses (same resolved file); a kafkajs without that method is left alone.
 */
type Queue = {
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  pending: unknown[];
  checkPendingRequests: () => void;
  scheduleCheckPendingRequests: () => void;
};

const CHECK_PENDING_REQUESTS_INTERVAL_MS = 10;

export function scheduleCheckPendingRequests(this: Queue): void {
  if (this.throttleCheckTimeoutId) return;
  const untilUnthrottled = this.throttledUntil - Date.now();
  if (this.pending.length === 0 && untilUnthrottled <= 0) return;
  const delay = untilUnthrottled > 0 ? untilUnthrottled : CHECK_PENDING_REQUESTS_INTERVAL_MS;
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, delay);
}

let applied = false;

/** Patches kafkajs' RequestQueue (idempotent); returns whether the patch is in place. */
export function applyKafkajsIdleFix(): boolean {
  if (applied) return true;
  const requireFromHere = createRequire(__filename);
  const RequestQueue = requireFromHere('kafkajs/src/network/requestQueue/index.js') as { prototype: Partial<Queue> };
  if (typeof RequestQueue.prototype.scheduleCheckPendingRequests !== 'function') return false;
  RequestQueue.prototype.scheduleCheckPendingRequests = scheduleCheckPendingRequests;
  applied = true;
  return true;
}
