import { waitFor } from '../../test/support/wait-for';
import { createLogger } from './logger';
import { createWorkLoop } from './work-loop';

const logger = createLogger({ service: 'test', level: 'silent' });
const HOUR = 3_600_000;

/** A round the test releases by hand, to see what the loop does while a round is in progress. */
function gate() {
  let open: () => void = () => undefined;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { open, opened };
}

describe('createWorkLoop', () => {
  test('when started, then it runs a round at once and sleeps until kicked', async () => {
    let rounds = 0;
    const loop = createWorkLoop({
      runOnce: async () => void rounds++,
      idleMs: HOUR,
      backoff: { baseMs: 1, maxMs: 1 },
      logger,
    });
    await loop.start();
    await waitFor(() => rounds === 1, { message: 'first round' });
    loop.kick();
    await waitFor(() => rounds === 2, { message: 'round after the kick' });
    await loop.stop();
    expect(rounds).toBe(2);
  });

  test('when a round reports more work, then the next round starts without a kick', async () => {
    let rounds = 0;
    const loop = createWorkLoop({
      runOnce: async () => ++rounds < 5,
      idleMs: HOUR,
      backoff: { baseMs: 1, maxMs: 1 },
      logger,
    });
    await loop.start();
    await waitFor(() => rounds === 5, { message: 'five rounds back to back' });
    await loop.stop();
    expect(rounds).toBe(5);
  });

  test('when idle, then it wakes up after the idle time on its own', async () => {
    let rounds = 0;
    const loop = createWorkLoop({
      runOnce: async () => void rounds++,
      idleMs: 5,
      backoff: { baseMs: 1, maxMs: 1 },
      logger,
    });
    await loop.start();
    await waitFor(() => rounds >= 3, { message: 'rounds from the idle timeout' });
    await loop.stop();
  });

  test('when idleMs answers undefined, then only a kick starts the next round', async () => {
    let rounds = 0;
    let polled = 0;
    const idleMs = () => {
      polled++;
      return undefined;
    };
    const loop = createWorkLoop({
      runOnce: async () => void rounds++,
      idleMs,
      backoff: { baseMs: 1, maxMs: 1 },
      logger,
    });
    await loop.start();
    await waitFor(() => polled === 1, { message: 'the loop went to sleep' });
    expect(rounds).toBe(1);
    loop.kick();
    await waitFor(() => rounds === 2, { message: 'round after the kick' });
    await loop.stop();
  });

  test('when kicked during a round, then another round follows it at once', async () => {
    let rounds = 0;
    const first = gate();
    const runOnce = async () => {
      rounds++;
      if (rounds === 1) await first.opened;
    };
    const loop = createWorkLoop({ runOnce, idleMs: HOUR, backoff: { baseMs: 1, maxMs: 1 }, logger });
    await loop.start();
    await waitFor(() => rounds === 1);
    loop.kick();
    first.open();
    await waitFor(() => rounds === 2, { message: 'the kick during the round was not lost' });
    await loop.stop();
  });

  test('when rounds fail, then it backs off (a kick does not cut the backoff short) and recovers', async () => {
    const attempts: number[] = [];
    let failing = true;
    const runOnce = async () => {
      attempts.push(Date.now());
      if (failing) throw new Error('PostgreSQL is down');
    };
    const loop = createWorkLoop({ runOnce, idleMs: HOUR, backoff: { baseMs: HOUR, maxMs: HOUR }, logger });
    await loop.start();
    await waitFor(() => attempts.length === 1);
    loop.kick();
    loop.kick();
    // The backoff is an hour: had a kick ended it, a second attempt would follow at once.
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(attempts).toHaveLength(1);
    failing = false;
    await loop.stop();
    expect(attempts).toHaveLength(1);
  });

  test('when a round fails, then the next one comes after the backoff and a success resets the count', async () => {
    const outcomes = ['fail', 'fail', 'ok', 'fail'];
    let rounds = 0;
    const warnings: unknown[] = [];
    const spy = createLogger({
      service: 'test',
      level: 'warn',
      destination: { write: (line: string) => void warnings.push(JSON.parse(line)) },
    });
    const runOnce = async () => {
      const outcome = outcomes[rounds++];
      if (outcome === 'fail') throw new Error('boom');
      return outcome === 'ok';
    };
    const loop = createWorkLoop({
      runOnce,
      idleMs: HOUR,
      backoff: { baseMs: 1, maxMs: 2 },
      logger: spy,
      failureMessage: 'round failed',
    });
    await loop.start();
    await waitFor(() => warnings.length === 3, { message: 'three failed rounds logged' });
    await loop.stop();
    expect(warnings.map((w) => (w as { failures: number }).failures)).toEqual([1, 2, 1]);
    expect(warnings.map((w) => (w as { msg: string }).msg)).toEqual(['round failed', 'round failed', 'round failed']);
  });

  test('when stopped during a round, then stop waits for that round and no round follows', async () => {
    let rounds = 0;
    let finished = false;
    const round = gate();
    const runOnce = async () => {
      rounds++;
      await round.opened;
      finished = true;
      return true;
    };
    const loop = createWorkLoop({ runOnce, idleMs: HOUR, backoff: { baseMs: 1, maxMs: 1 }, logger });
    await loop.start();
    await waitFor(() => rounds === 1);
    const stopped = loop.stop();
    let stopReturned = false;
    void stopped.then(() => (stopReturned = true));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(stopReturned).toBe(false);
    round.open();
    await stopped;
    expect(finished).toBe(true);
    expect(rounds).toBe(1);
  });

  test('when stopped while sleeping, then stop returns without waiting out the idle time', async () => {
    const loop = createWorkLoop({
      runOnce: async () => undefined,
      idleMs: HOUR,
      backoff: { baseMs: 1, maxMs: 1 },
      logger,
    });
    await loop.start();
    await loop.stop();
    const backingOff = createWorkLoop({
      runOnce: async () => Promise.reject(new Error('down')),
      idleMs: HOUR,
      backoff: { baseMs: HOUR, maxMs: HOUR },
      logger,
    });
    await backingOff.start();
    await backingOff.stop();
  });
});
