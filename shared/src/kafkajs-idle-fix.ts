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
 *
 * The second idle cost, a 100 ms request-timeout poll per broker connection, is mended below
 * (`armRequestTimeoutCheck`); a kafkajs without the methods it replaces is left alone as a whole.
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

/** A sent request as the queue keeps it in `inflight`. */
type InflightRequest = { sentAt: number | null; requestTimeout: number; timeoutRequest: () => void };
type TimedQueue = {
  enforceRequestTimeout: boolean;
  inflight: Map<number, InflightRequest>;
  isConnected: () => boolean;
  destroy: () => void;
  [TIMEOUT_CHECK]?: { timer: NodeJS.Timeout; dueAt: number } | undefined;
};

const TIMEOUT_CHECK = Symbol('requestTimeoutCheck');

/**
 * When a request is due: kafkajs times it out once more than requestTimeout has passed since it was sent
 * (one never sent counts from 0, as `Date.now() - null` does in kafkajs' check).
 */
const deadlineOf = (request: InflightRequest): number => (request.sentAt ?? 0) + request.requestTimeout;
/** setTimeout's longest delay; a longer one fires after 1 ms (kafkajs allows timeouts of days). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The second idle cost of kafkajs 2.2.4: from the moment a connection connects, its queue runs a 100 ms
 * `setInterval` to look for timed-out requests, in flight or not, for as long as it stays connected —
 * ten wake-ups a second per broker connection, in every service, idle or not (an idle relay's main
 * thread woke 34 times a second, 30 of them for these; with this, 18). Instead, one timer per queue, armed for the
 * earliest deadline among the requests in flight and only while one is: sending a request arms it (or
 * moves it earlier), its firing times out what is past its deadline exactly as kafkajs' check did, then
 * re-arms for the next deadline or stays off. A request still times out (at its deadline rather than up to
 * 100 ms after it); an idle connection costs nothing.
 */
function armRequestTimeoutCheck(queue: TimedQueue, dueAt: number): void {
  const armed = queue[TIMEOUT_CHECK];
  if (!queue.enforceRequestTimeout || (armed && armed.dueAt <= dueAt)) return;
  if (armed) clearTimeout(armed.timer);
  // kafkajs times a request out once more than requestTimeout has passed: fire just after the deadline
  // (or, for a deadline past setTimeout's range, at the end of its range, to look again then).
  const delay = Math.min(MAX_TIMER_MS, Math.max(0, dueAt - Date.now()) + 1);
  const timer = setTimeout(() => checkRequestTimeouts(queue), delay);
  queue[TIMEOUT_CHECK] = { timer, dueAt };
}

/** Times out the requests past their deadline (kafkajs' own test), then arms for the next one, if any. */
function checkRequestTimeouts(queue: TimedQueue): void {
  queue[TIMEOUT_CHECK] = undefined;
  const now = Date.now();
  let next = Infinity;
  for (const [correlationId, request] of [...queue.inflight]) {
    // Still the same request in flight: one timing out may have settled another (kafkajs' live forEach).
    if (queue.inflight.get(correlationId) !== request) continue;
    const due = deadlineOf(request);
    if (now > due) request.timeoutRequest();
    else next = Math.min(next, due);
  }
  if (next !== Infinity && queue.isConnected()) armRequestTimeoutCheck(queue, next);
}

let applied = false;

export type QueuePrototype = Partial<Queue> & {
  scheduleRequestTimeoutCheck?: (this: TimedQueue) => void;
  sendSocketRequest?: (this: TimedQueue, request: InflightRequest & { correlationId: number }) => void;
  destroy?: (this: TimedQueue) => void;
};

/** Patches kafkajs' RequestQueue (idempotent); returns whether the patch is in place. */
export function applyKafkajsIdleFix(): boolean {
  if (applied) return true;
  const requireFromHere = createRequire(__filename);
  const RequestQueue = requireFromHere('kafkajs/src/network/requestQueue/index.js') as { prototype: QueuePrototype };
  applied = patchRequestQueue(RequestQueue.prototype);
  return applied;
}

/**
 * Replaces the four methods on a RequestQueue prototype; touches nothing and returns false when any of
 * them is missing (a kafkajs whose internals changed: the caller warns, the client works unpatched).
 */
export function patchRequestQueue(proto: QueuePrototype): boolean {
  const { sendSocketRequest, destroy } = proto;
  if (
    typeof proto.scheduleCheckPendingRequests !== 'function' ||
    typeof proto.scheduleRequestTimeoutCheck !== 'function' ||
    typeof sendSocketRequest !== 'function' ||
    typeof destroy !== 'function'
  )
    return false;
  proto.scheduleCheckPendingRequests = scheduleCheckPendingRequests;
  // On connect kafkajs clears the queue's timers and starts its forever interval: only the clearing stays.
  proto.scheduleRequestTimeoutCheck = function (this: TimedQueue) {
    if (this.enforceRequestTimeout) this.destroy();
  };
  proto.sendSocketRequest = function (this: TimedQueue, request) {
    try {
      sendSocketRequest.call(this, request);
    } finally {
      // Also when the write threw: the request stays in flight unsent, and kafkajs' check dropped it.
      if (this.inflight.get(request.correlationId) === request) armRequestTimeoutCheck(this, deadlineOf(request));
    }
  };
  proto.destroy = function (this: TimedQueue) {
    destroy.call(this);
    clearTimeout(this[TIMEOUT_CHECK]?.timer);
    this[TIMEOUT_CHECK] = undefined;
  };
  return true;
}
