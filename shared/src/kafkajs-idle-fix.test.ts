import { createRequire } from 'node:module';
import { applyKafkajsIdleFix, patchRequestQueue } from './kafkajs-idle-fix';

type Queue = {
  throttledUntil: number;
  throttleCheckTimeoutId: NodeJS.Timeout | null;
  pending: unknown[];
  inflight: Map<number, unknown>;
  checkPendingRequests: () => void;
  scheduleRequestTimeoutCheck: () => void;
  push: (request: object) => void;
  fulfillRequest: (answer: { correlationId: number; payload: Buffer | null; size: number }) => void;
  destroy: () => void;
};
const RequestQueue = createRequire(__filename)('kafkajs/src/network/requestQueue/index.js') as new (
  opts: object,
) => Queue;
const logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };
const newQueue = (
  opts: { enforceRequestTimeout?: boolean; requestTimeout?: number; maxInFlightRequests?: number } = {},
) =>
  new RequestQueue({
    maxInFlightRequests: opts.maxInFlightRequests ?? 1,
    requestTimeout: opts.requestTimeout ?? 1_000,
    enforceRequestTimeout: opts.enforceRequestTimeout ?? false,
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

/** A queue enforcing request timeouts, as kafkajs has it once its connection connected. */
function connected(opts: { requestTimeout?: number; maxInFlightRequests?: number }): Queue {
  const queue = newQueue({ enforceRequestTimeout: true, ...opts });
  queue.scheduleRequestTimeoutCheck();
  return queue;
}

/**
 * Timers armed through the globals kafkajs calls (setTimeout, setInterval) and still due: neither fired
 * (a one-shot) nor cleared. kafkajs' forever interval would stay in it.
 */
function trackTimers(): { live: () => number; set: () => number; restore: () => void } {
  const live = new Set<unknown>();
  let set = 0;
  const real = { setTimeout, setInterval, clearTimeout, clearInterval };
  const spies = [
    jest.spyOn(global, 'setTimeout').mockImplementation(((fn: () => void, ms?: number) => {
      set++;
      const timer = real.setTimeout(() => {
        live.delete(timer);
        fn();
      }, ms);
      live.add(timer);
      return timer;
    }) as unknown as typeof setTimeout),
    jest.spyOn(global, 'setInterval').mockImplementation(((fn: () => void, ms?: number) => {
      const timer = real.setInterval(fn, ms);
      live.add(timer);
      return timer;
    }) as unknown as typeof setInterval),
    jest.spyOn(global, 'clearTimeout').mockImplementation((timer) => {
      live.delete(timer);
      real.clearTimeout(timer);
    }),
    jest.spyOn(global, 'clearInterval').mockImplementation((timer) => {
      live.delete(timer);
      real.clearInterval(timer);
    }),
  ];
  return { live: () => live.size, set: () => set, restore: () => spies.forEach((spy) => spy.mockRestore()) };
}

/** Sleeps on the real timer (not counted). */
const sleep = (ms: number, realSetTimeout: typeof setTimeout) => new Promise((r) => realSetTimeout(r, ms));

/** Pushes a request as a connection does; resolves to how it ended. */
function send(
  queue: Queue,
  correlationId: number,
  requestTimeout: number,
  sendRequest: () => void = () => undefined,
): Promise<string> {
  return new Promise((resolve) =>
    queue.push({
      entry: {
        correlationId,
        apiName: 'Produce',
        apiKey: 0,
        apiVersion: 7,
        resolve: () => resolve('answered'),
        reject: (err: Error) => resolve(err.name),
      },
      expectResponse: true,
      sendRequest,
      requestTimeout,
    }),
  );
}

describe("kafkajs' request timeouts while idle", () => {
  const realSetTimeout = setTimeout;
  let tracked: ReturnType<typeof trackTimers>;
  beforeAll(() => expect(applyKafkajsIdleFix()).toBe(true));
  beforeEach(() => (tracked = trackTimers()));
  afterEach(() => tracked.restore());

  it('when a connection connects and sends nothing, then no timer runs (kafkajs polled every 100 ms)', async () => {
    const queue = connected({});
    try {
      await sleep(250, realSetTimeout);
      expect(tracked.live()).toBe(0);
    } finally {
      queue.destroy();
    }
  });

  it("when a request is never answered, then it times out with kafkajs' own error, no timer left", async () => {
    const queue = connected({ requestTimeout: 50 });
    const started = Date.now();
    await expect(send(queue, 1, 50)).resolves.toBe('KafkaJSRequestTimeoutError');
    expect(Date.now() - started).toBeGreaterThanOrEqual(50);
    expect(queue.inflight.size).toBe(0);
    expect(tracked.live()).toBe(0);
  });

  it('when a request is answered, then it does not time out, and the check stops after its deadline', async () => {
    const queue = connected({ requestTimeout: 30 });
    const outcome = send(queue, 7, 30);
    expect(tracked.live()).toBe(1);
    queue.fulfillRequest({ correlationId: 7, payload: null, size: 0 });
    await expect(outcome).resolves.toBe('answered');
    await sleep(80, realSetTimeout);
    expect(tracked.live()).toBe(0);
  });

  it('when the connection is destroyed with a request in flight, then its timer goes with it', () => {
    const queue = connected({ requestTimeout: 60_000 });
    void send(queue, 9, 60_000);
    expect(tracked.live()).toBe(1);
    queue.destroy();
    expect(tracked.live()).toBe(0);
  });

  it('when the earlier of two requests is answered, then the later one times out at its deadline', async () => {
    const queue = connected({ requestTimeout: 30, maxInFlightRequests: 2 });
    const early = send(queue, 1, 30);
    const late = send(queue, 2, 200);
    queue.fulfillRequest({ correlationId: 1, payload: null, size: 0 });
    await expect(early).resolves.toBe('answered');
    const started = Date.now();
    await expect(late).resolves.toBe('KafkaJSRequestTimeoutError');
    expect(Date.now() - started).toBeGreaterThanOrEqual(100);
    expect(tracked.live()).toBe(0);
  });

  it('when a request waits in the queue behind another, then once sent it times out too', async () => {
    const queue = connected({ requestTimeout: 40, maxInFlightRequests: 1 });
    const first = send(queue, 1, 40);
    const second = send(queue, 2, 40);
    expect(queue.pending).toHaveLength(1);
    await expect(first).resolves.toBe('KafkaJSRequestTimeoutError');
    await expect(second).resolves.toBe('KafkaJSRequestTimeoutError');
    expect(queue.inflight.size).toBe(0);
    expect(tracked.live()).toBe(0);
  });

  it("when a timeout is beyond setTimeout's range (kafkajs allows days), then the check does not spin", async () => {
    const queue = newQueue({ enforceRequestTimeout: true, requestTimeout: 1_000, maxInFlightRequests: 1 });
    try {
      queue.scheduleRequestTimeoutCheck();
      void send(queue, 1, Number.MAX_SAFE_INTEGER);
      await sleep(50, realSetTimeout);
      // A delay past 2^31 - 1 ms becomes 1 ms in Node: re-armed from each firing, that was ~50 timers here.
      expect(tracked.set()).toBe(1);
      expect(queue.inflight.size).toBe(1);
    } finally {
      queue.destroy();
    }
  });

  it('when writing a request throws, then the unsent request is dropped from the queue (as kafkajs did)', async () => {
    const queue = connected({ requestTimeout: 30 });
    const outcome = new Promise<string>((resolve) => {
      const entry = { correlationId: 1, apiName: 'Produce', apiKey: 0, apiVersion: 7, resolve, reject: resolve };
      const write = () => {
        throw new Error('write EPIPE');
      };
      expect(() => queue.push({ entry, expectResponse: true, sendRequest: write, requestTimeout: 30 })).toThrow(
        'write EPIPE',
      );
    });
    await expect(outcome).resolves.toMatchObject({ name: 'KafkaJSRequestTimeoutError' });
    expect(queue.inflight.size).toBe(0);
    expect(tracked.live()).toBe(0);
  });
});

describe('a kafkajs whose request queue changed', () => {
  it('when one of the methods the fix replaces is missing, then nothing is replaced and the caller is told', () => {
    const untouched = () => undefined;
    const proto = {
      scheduleCheckPendingRequests: untouched,
      scheduleRequestTimeoutCheck: untouched,
      destroy: untouched,
      // no sendSocketRequest: renamed in this imagined kafkajs
    };
    expect(patchRequestQueue(proto)).toBe(false);
    expect(proto).toEqual({
      scheduleCheckPendingRequests: untouched,
      scheduleRequestTimeoutCheck: untouched,
      destroy: untouched,
    });
  });
});
