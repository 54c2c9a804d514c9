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
 * While every provider's breaker is open it claims nothing: rows recorded or come due meanwhile are
 * deferred (`circuit_open`) until the next trial by `deferWhileOpen`, which publishes their status;
 * then it sleeps until a kick, a breaker change or the next poll. Half-open: one trial at a time.
 */
export function createDispatcher(opts: {
  pool: Pool;
  deliver: (claim: ClaimedRequest) => Promise<void>;
  circuitState: () => CircuitState;
  /** Defers the due rows while no breaker admits mail; until = the next trial. */
  deferWhileOpen?: (until: Date) => Promise<number>;
  /** When the next breaker lets a trial through (while all are open). */
  nextAdmitAt?: () => Date | undefined;
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
    // Open: no SMTP, nothing claimed; due rows get an honest `deferred` / circuit_open status instead.
    if (state === 'open') {
      const until = new Date(Math.max(opts.nextAdmitAt?.()?.getTime() ?? 0, Date.now() + 1_000));
      await opts.deferWhileOpen?.(until);
      return false;
    }
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
    // Open without deferWhileOpen: only a breaker change (or stop) wakes it. With it: poll for rows come due.
    idleMs: () => (opts.circuitState() === 'open' && !opts.deferWhileOpen ? undefined : opts.pollMs),
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
