import type { BackoffPolicy } from '@shared/backoff';
import type { Logger } from '@shared/logger';
import { createWorkLoop } from '@shared/work-loop';
import type { RelayRound } from '../domain/relay-round';

export type RelayLoops = { wake: () => void; start: () => Promise<void>; stop: () => Promise<void> };

/**
 * `concurrency` work loops (shared/src/work-loop.ts) running relay rounds: a round again at once while rows
 * were handled; after a wake-up that found nothing, one more look shortly (a NOTIFY can beat the row's
 * visibility to our snapshot, docs/field-notes.md), then the poll interval; after a failure, the backoff
 * (the rows stay pending).
 */
export function createRelayLoops(opts: {
  round: RelayRound;
  concurrency: number;
  pollIntervalMs: number;
  requeryDelayMs: number;
  backoff: BackoffPolicy;
  logger: Logger;
}): RelayLoops {
  const loops = Array.from({ length: opts.concurrency }, (_, index) => {
    let requery = false;
    const loop = createWorkLoop({
      runOnce: async () => (await opts.round()) > 0,
      idleMs: () => {
        if (!requery) return opts.pollIntervalMs;
        requery = false;
        return opts.requeryDelayMs;
      },
      backoff: opts.backoff,
      logger: opts.logger.child({ worker: index }),
      failureMessage: 'relay round failed: rows stay pending',
    });
    return {
      loop,
      wake: () => {
        requery = true;
        loop.kick();
      },
    };
  });
  return {
    wake: () => loops.forEach((l) => l.wake()),
    start: async () => {
      await Promise.all(loops.map((l) => l.loop.start()));
    },
    stop: async () => {
      await Promise.all(loops.map((l) => l.loop.stop()));
    },
  };
}
