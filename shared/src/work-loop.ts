import { backoffDelay, type BackoffPolicy } from './backoff';
import { errorMessage } from './errors';
import type { Logger } from './logger';

export type WorkLoopOptions = {
  /**
   * One round of work. Resolve `true` when more work may be waiting (a full batch): the next round
   * starts at once. Resolve `false`/nothing when idle: the loop sleeps. A rejection is a failure:
   * the loop backs off (consecutive failures count up) and tries again.
   */
  runOnce: () => Promise<boolean | void>;
  /**
   * How long to sleep when idle before the next round; `kick()` cuts it short. A function is asked
   * after every round; `undefined` means sleep until kicked (nothing to poll for: say, an open breaker).
   */
  idleMs: number | (() => number | undefined);
  /** The wait after a failed round. Only `stop()` cuts it short: a kick must not turn it into a busy loop. */
  backoff: BackoffPolicy;
  logger: Logger;
  /** The log message of a failed round (logged with the error, the failure count and the delay). */
  failureMessage?: string;
};

export type WorkLoop = {
  /** Starts the first round at once and returns. */
  start: () => Promise<void>;
  /** Ends the sleep, waits for the round in progress to finish, and runs no further round. */
  stop: () => Promise<void>;
  /** Asks for a round now: ends an idle sleep, or makes the loop go again right after the current round. */
  kick: () => void;
};

/**
 * The "sleep until woken" loop every background worker of the services shares: run a round, go again
 * at once while there is more, otherwise sleep until kicked or the idle time passes; back off on
 * failures; stop waits for the round in progress.
 */
export function createWorkLoop(opts: WorkLoopOptions): WorkLoop {
  let running = false;
  let kicked = false;
  let wake: ((byKick: boolean) => void) | undefined;
  let loop: Promise<void> | undefined;

  const sleep = (ms: number | undefined, kickable: boolean): Promise<void> =>
    new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(resolve, ms);
      wake = (byKick) => {
        if (byKick && !kickable) return;
        if (timer) clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      wake = undefined;
    });
  const run = async (): Promise<void> => {
    let failures = 0;
    while (running) {
      kicked = false;
      let more: boolean | void;
      try {
        more = await opts.runOnce();
        failures = 0;
      } catch (err) {
        failures += 1;
        const delay = backoffDelay(failures, opts.backoff);
        const message = opts.failureMessage ?? 'work round failed; backing off';
        opts.logger.warn({ err: { message: errorMessage(err) }, failures, retry_in_ms: delay }, message);
        if (running) await sleep(delay, false);
        continue;
      }
      if (!running) return;
      if (more === true || kicked) continue;
      const idle = typeof opts.idleMs === 'function' ? opts.idleMs() : opts.idleMs;
      await sleep(idle, true);
    }
  };

  return {
    start: async () => {
      if (running) return;
      running = true;
      loop = run();
    },
    stop: async () => {
      running = false;
      wake?.(false);
      await loop;
    },
    kick: () => {
      kicked = true;
      wake?.(true);
    },
  };
}
