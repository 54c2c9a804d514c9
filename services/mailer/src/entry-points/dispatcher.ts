import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import { createWorkLoop } from '@shared/work-loop';
import type { ClaimedRequest } from '../data-access/requests-repository';
import type { Delivery } from '../domain/deliver-context';
import type { CircuitState } from '../domain/smtp-circuit';
import { SendSlots } from './send-slots';

export type Dispatcher = {
  start: () => Promise<void>;
  stop: () => Promise<void>;
  kick: () => void;
  /** How many rows the intake may claim for this dispatcher now (free connections; 0 unless closed). */
  room: () => number;
  /** Takes rows the intake inserted already claimed (given back at once if stopping). */
  adopt: (claims: ClaimedRequest[]) => void;
};

/** Where claims come from and go back to (requests-repository's claimDueRequests, attempt-outcomes' releaseClaims). */
export type ClaimStore = {
  /** Marks up to `limit` due rows `sending` under a lease (BEFORE any SMTP call) and returns them. */
  claim: (limit: number) => Promise<ClaimedRequest[]>;
  /** Puts claimed rows never handed to SMTP back to `pending`; returns how many went back. */
  release: (claims: ClaimedRequest[]) => Promise<number>;
};

export type DispatcherOptions = {
  claims: ClaimStore;
  /** One attempt: resolves when SMTP answered, with the outcome's recording still running. */
  deliver: (claim: ClaimedRequest) => Promise<Delivery>;
  circuitState: () => CircuitState;
  /** Defers the due rows while no breaker admits mail; until = the next trial. */
  deferWhileOpen?: (until: Date) => Promise<number>;
  /** When the next breaker lets a trial through (while all are open). */
  nextAdmitAt?: () => Date | undefined;
  /** SMTP connections (SMTP_POOL_SIZE): at most this many sends in SMTP at once, so none queues in nodemailer. */
  concurrency: number;
  /** Most rows claimed ahead of a free connection (default 4 x concurrency). */
  claimAhead?: number;
  /** Outcomes answered but not yet recorded before claiming pauses (default 20 x concurrency). */
  maxUnrecorded?: number;
  /** A claimed row that waited this long for a connection is given back unsent (a small part of its lease). */
  maxQueueMs: number;
  pollMs: number;
  logger: Logger;
};

/** Gives claimed-but-unsent rows back to `pending` so no one waits for their lease; tracks each release. */
function createGiveBack(claims: ClaimStore, log: Logger) {
  const releases = new Set<Promise<void>>();
  const giveBack = (taken: ClaimedRequest[], reason: string, level: 'info' | 'warn'): Promise<void> => {
    if (taken.length === 0) return Promise.resolve();
    const requestIds = taken.map((c) => c.requestId);
    const release: Promise<void> = claims
      .release(taken)
      .then((n) => log[level]({ released: n, request_ids: requestIds, reason }, 'claimed requests given back unsent'))
      .catch((err: unknown) =>
        log.error(
          { request_ids: requestIds, reason, err: { message: errorMessage(err) } },
          'could not give back claimed requests; their lease will bring them back',
        ),
      )
      .finally(() => releases.delete(release));
    releases.add(release);
    return release;
  };
  return { giveBack, settled: async () => void (await Promise.allSettled([...releases])) };
}

/**
 * Claims due requests in batches into a small local queue that feeds the SMTP connections as they
 * free up; a connection is free when SMTP answers, while the outcome is recorded (group commit)
 * behind it. How far it claims ahead follows SMTP's pace (rows wait milliseconds, far inside their
 * lease); a row that waited longer than `maxQueueMs` anyway is given back. Claiming pauses while
 * `maxUnrecorded` outcomes await recording. While every provider's breaker is open it claims nothing
 * and gives back what it queued: rows recorded or come due meanwhile are deferred (`circuit_open`)
 * until the next trial by `deferWhileOpen`, which publishes their status; then it sleeps until a kick,
 * a breaker change or the next poll. Half-open: one trial at a time, nothing ahead.
 */
export function createDispatcher(opts: DispatcherOptions): Dispatcher {
  const log = opts.logger.child({ component: 'dispatcher' });
  const { giveBack, settled } = createGiveBack(opts.claims, log);
  /** The last look found (or did not make) a full claim: more rows may be due. */
  let backlog = false;

  const slots = new SendSlots({
    deliver: opts.deliver,
    circuitState: opts.circuitState,
    concurrency: opts.concurrency,
    claimAhead: opts.claimAhead ?? 4 * opts.concurrency,
    maxUnrecorded: opts.maxUnrecorded ?? 20 * opts.concurrency,
    maxQueueMs: opts.maxQueueMs,
    onProgress: () => {
      if (backlog && slots.claimLimit(opts.circuitState()) > 0) loop.kick();
    },
    onStale: () => loop.kick(),
    logger: log,
  });

  /** One round: claim what the breaker and the slots admit and start sending; true when more rows may be due. */
  const claimAndSend = async (): Promise<boolean> => {
    void giveBack(slots.takeStale(), 'waited too long for an SMTP connection', 'warn');
    const state = opts.circuitState();
    // Open: no SMTP, nothing claimed; due rows get an honest `deferred` / circuit_open status instead.
    if (state === 'open') {
      await giveBack(slots.takeQueued(), "every SMTP provider's breaker is open", 'info');
      const until = new Date(Math.max(opts.nextAdmitAt?.()?.getTime() ?? 0, Date.now() + 1_000));
      await opts.deferWhileOpen?.(until);
      return false;
    }
    slots.feed();
    const limit = slots.claimLimit(state);
    if (limit <= 0) {
      // Not looked: a send ending or an outcome recorded asks again (onProgress).
      backlog = true;
      return false;
    }
    const claims = await opts.claims.claim(limit);
    backlog = claims.length === limit;
    slots.add(claims);
    // A full claim may mean more rows are due: go again if there is room. Otherwise wait for a kick
    // (new requests, a finished send, a breaker change) or the poll that finds retries come due.
    return backlog && opts.circuitState() === 'closed' && slots.claimLimit('closed') > 0;
  };

  const loop = createWorkLoop({
    runOnce: claimAndSend,
    // Open without deferWhileOpen: only a breaker change (or stop) wakes it. With it: poll for rows come due.
    idleMs: () => (opts.circuitState() === 'open' && !opts.deferWhileOpen ? undefined : opts.pollMs),
    backoff: { baseMs: opts.pollMs * 2, maxMs: 5_000 },
    logger: log,
    failureMessage: 'claiming due mail requests failed',
  });

  let stopping = false;
  return {
    start: loop.start,
    stop: async () => {
      stopping = true;
      await loop.stop();
      // Claimed rows never handed to SMTP go back at once; sends in SMTP finish and every outcome is
      // recorded, not left to a lease.
      const unsent = giveBack(slots.stop(), 'stopping', 'info');
      await slots.settle();
      await unsent;
      await settled();
    },
    kick: loop.kick,
    room: () => (stopping || opts.circuitState() !== 'closed' ? 0 : slots.claimLimit('closed')),
    adopt: (claims) => {
      if (stopping) void giveBack(claims, 'stopping', 'info');
      else slots.add(claims);
    },
  };
}
