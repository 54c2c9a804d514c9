import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import type { Pool } from '@shared/db';
import { createWorkLoop } from '@shared/work-loop';
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

  /** One round: claim what the breaker admits and start sending; true when more rows may be due. */
  const claimAndSend = async (): Promise<boolean> => {
    const state = opts.circuitState();
    // Open: only a breaker state change (or stop) wakes us — no polling, no SMTP, nothing claimed.
    if (state === 'open') return false;
    const capacity = state === 'half-open' ? Math.max(0, 1 - inFlight.size) : opts.concurrency - inFlight.size;
    if (capacity <= 0) return false;
    const claims = await claimDueRequests(opts.pool, { limit: capacity, leaseMs: opts.leaseMs });
    for (const claim of claims) {
      const task: Promise<void> = opts
        .deliver(claim)
        .catch((err: unknown) =>
          log.error({ request_id: claim.requestId, err: { message: errorMessage(err) } }, 'delivery crashed'),
        )
        .finally(() => {
          inFlight.delete(task);
          loop.kick();
        });
      inFlight.add(task);
    }
    // A full claim may mean more rows are due: go again at once. Otherwise wait for a kick
    // (new requests, a finished send, a breaker change) or the poll that finds retries come due.
    return claims.length > 0 && claims.length === capacity && opts.circuitState() === 'closed';
  };

  const loop = createWorkLoop({
    runOnce: claimAndSend,
    idleMs: () => (opts.circuitState() === 'open' ? undefined : opts.pollMs),
    backoff: { baseMs: opts.pollMs * 2, maxMs: 5_000 },
    logger: log,
    failureMessage: 'claiming due mail requests failed',
  });

  return {
    start: loop.start,
    stop: async () => {
      await loop.stop();
      // Finish in-flight sends so their outcomes are recorded, not left to a lease.
      await Promise.allSettled([...inFlight]);
    },
    kick: loop.kick,
  };
}
