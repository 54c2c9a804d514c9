import type { BackoffPolicy } from '@shared/backoff';
import type { Logger } from '@shared/logger';
import { createWorkLoop } from '@shared/work-loop';
import type { RelayRound } from '../domain/relay-round';

export type RelayLoops = { wake: () => void; start: () => Promise<void>; stop: () => Promise<void> };

/**
 * `concurrency` work loops (shared/src/work-loop.ts) running relay rounds. What wakes a loop, and what
 * does not — every round is a transaction, so a round nobody needs is pure cost:
 * - a NOTIFY wakes ONE loop: an idle one if there is one (round robin), else a busy one, which goes
 *   again right after its round. A commit's rows are claimed by a single round anyway;
 * - after a round, the loop goes again at once only if the batch was full (more rows may be waiting);
 *   a batch that was not full took everything it could see, and rows committed meanwhile send their
 *   own NOTIFY;
 * - a full batch also wakes an idle sibling: a backlog is drained by every loop, side by side;
 * - after a wake-up that found nothing, one more look shortly (a NOTIFY can beat the row's visibility
 *   to our snapshot, docs/field-notes.md); then only the first loop polls, every poll interval (the
 *   fallback for a lost LISTEN), the others sleep until woken;
 * - after a failure, the backoff (the rows stay pending).
 */
export function createRelayLoops(opts: {
  round: RelayRound;
  concurrency: number;
  batchSize: number;
  pollIntervalMs: number;
  requeryDelayMs: number;
  backoff: BackoffPolicy;
  logger: Logger;
}): RelayLoops {
  type Entry = { loop: ReturnType<typeof createWorkLoop>; state: { busy: boolean; requery: boolean; found: boolean } };
  const loops: Entry[] = [];
  let next = 0;
  /**
   * Wakes one loop: an idle one if any (round robin), else a busy one, which goes again after its round.
   * `requery`: a NOTIFY's wake-up, which may come before its rows are visible (one more look if empty).
   */
  const wakeOne = (requery: boolean): void => {
    const idle = [...loops.slice(next), ...loops.slice(0, next)].find((l) => !l.state.busy);
    const chosen = idle ?? loops[next];
    next = (next + 1) % loops.length;
    if (!chosen) return;
    chosen.state.requery = requery;
    chosen.state.found = false;
    chosen.loop.kick();
  };
  for (let index = 0; index < opts.concurrency; index++) {
    const state = { busy: false, requery: false, found: false };
    const loop = createWorkLoop({
      runOnce: async () => {
        state.busy = true;
        try {
          const handled = await opts.round();
          state.found = handled > 0;
          const full = handled >= opts.batchSize;
          if (full && loops.some((l) => !l.state.busy)) wakeOne(false);
          return full;
        } finally {
          state.busy = false;
        }
      },
      idleMs: () => {
        // The requery is for a wake-up whose rows were not visible yet: not needed once rows came.
        const requery = state.requery && !state.found;
        state.requery = false;
        if (requery) return opts.requeryDelayMs;
        return index === 0 ? opts.pollIntervalMs : undefined;
      },
      backoff: opts.backoff,
      logger: opts.logger.child({ worker: index }),
      failureMessage: 'relay round failed: rows stay pending',
    });
    loops.push({ loop, state });
  }
  return {
    wake: () => wakeOne(true),
    start: async () => {
      await Promise.all(loops.map((l) => l.loop.start()));
    },
    stop: async () => {
      await Promise.all(loops.map((l) => l.loop.stop()));
    },
  };
}
