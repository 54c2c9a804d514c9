import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import type { Pool } from '@shared/db';
import { claimDueRequests, type ClaimedRequest } from '../data-access/requests-repository';
import type { CircuitState } from '../domain/smtp-circuit';

export type Dispatcher = { start: () => Promise<void>; stop: () => Promise<void>; kick: () => void };

/**
 * Claims due requests and hands each to `deliver`, at most `concurrency` at a time (the SMTP pool
 * size, so no mail queues inside nodemailer and each attempt ends within SMTP's own timeouts).
 * While the breaker is open it claims nothing and sleeps until the breaker changes state: rows that
 * come due meanwhile simply wait (no status churn, no busy loop). Half-open: one trial at a time.
 */
export function createDispatcher(opts: {
  pool: Pool;
  deliver: (claim: ClaimedRequest) => Promise<void>;
  circuitState: () => CircuitState;
  concurrency: number;
  leaseMs: number;
  pollMs: number;
  logger: Logger;
}): Dispatcher {
  const log = opts.logger.child({ component: 'dispatcher' });
  const inFlight = new Set<Promise<void>>();
  let running = false;
  let kicked = false;
  let wake: (() => void) | undefined;
  let loop: Promise<void> | undefined;

  const kick = () => {
    kicked = true;
    wake?.();
  };

  const sleep = (ms: number | undefined) =>
    new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(resolve, ms);
      wake = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
    }).finally(() => {
      wake = undefined;
    });

  const run = async () => {
    let failures = 0;
    while (running) {
      kicked = false;
      const state = opts.circuitState();
      if (state === 'open') {
        // Only a breaker state change (or stop) wakes us: no polling, no SMTP, nothing claimed.
        await sleep(undefined);
        continue;
      }
      const capacity = state === 'half-open' ? Math.max(0, 1 - inFlight.size) : opts.concurrency - inFlight.size;
      let claimed = 0;
      if (capacity > 0) {
        try {
          const claims = await claimDueRequests(opts.pool, { limit: capacity, leaseMs: opts.leaseMs });
          failures = 0;
          claimed = claims.length;
          for (const claim of claims) {
            const task: Promise<void> = opts
              .deliver(claim)
              .catch((err: unknown) => log.error({ request_id: claim.requestId, err: { message: errorMessage(err) } }, 'delivery crashed'))
              .finally(() => {
                inFlight.delete(task);
                kick();
              });
            inFlight.add(task);
          }
        } catch (err) {
          failures += 1;
          log.warn({ err: { message: errorMessage(err) } }, 'claiming due mail requests failed');
          await sleep(Math.min(opts.pollMs * 2 ** failures, 5_000));
          continue;
        }
      }
      if (!running) break;
      // A full claim may mean more rows are due: go again at once. Otherwise wait for a kick
      // (new requests, a finished send, a breaker change) or the poll that finds retries come due.
      if (claimed > 0 && claimed === capacity && opts.circuitState() === 'closed') continue;
      if (kicked) continue;
      await sleep(opts.pollMs);
    }
  };

  return {
    start: async () => {
      running = true;
      loop = run();
    },
    stop: async () => {
      running = false;
      wake?.();
      await loop;
      // Finish in-flight sends so their outcomes are recorded, not left to a lease.
      await Promise.allSettled([...inFlight]);
    },
    kick,
  };
}
