import type { Logger } from '@shared/logger';
import type { Pool } from '@shared/db';
import { createWorkLoop } from '@shared/work-loop';
import { deleteExpiredLoginThrottles, deleteOldProcessedEvents } from '../data-access/retention-repository';

export type HousekeepingConfig = {
  intervalS: number;
  processedEventsRetentionS: number;
  loginFailureWindowS: number;
  batchSize?: number;
};

/**
 * A periodic job: delete dedupe records older than the retention (a redelivery older than that cannot
 * happen: Kafka's own retention is shorter) and login-failure windows that have expired, at start and
 * then every `intervalS`. Several accounts instances may run it at once: the deletes are idempotent.
 */
export function createHousekeeping(deps: { pool: Pool; logger: Logger; config: HousekeepingConfig }) {
  const log = deps.logger.child({ component: 'housekeeping' });
  const batch = deps.config.batchSize ?? 1_000;

  /** One pass: batches until nothing old is left. */
  const runOnce = async (): Promise<{ processedEvents: number; loginThrottles: number }> => {
    let processedEvents = 0;
    let loginThrottles = 0;
    for (;;) {
      const n = await deleteOldProcessedEvents(deps.pool, {
        olderThanS: deps.config.processedEventsRetentionS,
        limit: batch,
      });
      processedEvents += n;
      if (n < batch) break;
    }
    for (;;) {
      const n = await deleteExpiredLoginThrottles(deps.pool, {
        windowS: deps.config.loginFailureWindowS,
        limit: batch,
      });
      loginThrottles += n;
      if (n < batch) break;
    }
    if (processedEvents + loginThrottles > 0)
      log.info({ processed_events: processedEvents, login_throttles: loginThrottles }, 'old rows deleted');
    return { processedEvents, loginThrottles };
  };

  const loop = createWorkLoop({
    runOnce: async () => void (await runOnce()),
    idleMs: deps.config.intervalS * 1000,
    backoff: { baseMs: 1_000, maxMs: deps.config.intervalS * 1000, jitter: 'equal' },
    logger: log,
    failureMessage: 'housekeeping failed; retrying',
  });

  return { runOnce, start: loop.start, stop: loop.stop };
}
