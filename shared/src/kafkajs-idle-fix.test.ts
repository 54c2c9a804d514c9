import { createRequire } from 'node:module';
import { applyKafkajsIdleFix } from './kafkajs-idle-fix';

type Queue = {
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  pending: unknown[];
  checkPendingRequests: () => void;
  destroy: () => void;
};
const RequestQueue = createRequire(__filename)('kafkajs/src/network/requestQueue/index.js') as new (
  opts: object,
) => Queue;
const logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const newQueue = () =>
  new RequestQueue({
    maxInFlightRequests: 1,
    requestTimeout: 1_000,
    enforceRequestTimeout: false,
    clientId: 't',
    broker: 'b',
    logger,
    isConnected: () => true,
  });

describe("kafkajs' request queue while idle", () => {
  beforeAll(() => expect(applyKafkajsIdleFix()).toBe(true));

  it('when nothing is pending and nothing is throttled, then checking arms no timer (no idle loop)', () => {
    const queue = newQueue();
    try {
      queue.checkPendingRequests();
      expect(queue.throttleCheckTimeoutId).toBeNull();
    } finally {
      // Unpatched, this timer re-arms itself for ever and jest would never exit.
      clearTimeout(queue.throttleCheckTimeoutId as NodeJS.Timeout);
    }
  });

  it('when a request is pending behind a throttle, then a check is scheduled for when the throttle ends', () => {
    const queue = newQueue();
    queue.throttledUntil = Date.now() + 60_000;
    queue.pending.push({});
    queue.checkPendingRequests();
    expect(queue.throttleCheckTimeoutId).not.toBeNull();
    clearTimeout(queue.throttleCheckTimeoutId as NodeJS.Timeout);
  });
});
