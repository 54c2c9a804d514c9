import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import type { Pool } from '@shared/db';
import { deleteExpiredLoginThrottles, deleteOldProcessedEvents } from '../data-access/retention-repository';

export type HousekeepingConfig = { intervalS: number; processedEventsRetentionS: number; loginFailureWindowS: number; batchSize?: number };

/**
 * A periodic job: delete dedupe records older than the retention (a redelivery older than that cannot
 * happen: Kafka's own retention is shorter) and login-failure windows that have expired. Several
 * accounts instances may run it at once: the deletes are idempotent.
 */
export function createHousekeeping(deps: { pool: Pool; logger: Logger; config: HousekeepingConfig }) {
  const log = deps.logger.child({ component: 'housekeeping' });
  const batch = deps.config.batchSize ?? 1_000;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;

  /** One pass: batches until nothing old is left. */
  const runOnce = async (): Promise<{ processedEvents: number; loginThrottles: number }> => {
    let processedEvents = 0;
    let loginThrottles = 0;
    for (;;) {
      const n = await deleteOldProcessedEvents(deps.pool, { olderThanS: deps.config.processedEventsRetentionS, limit: batch });
      processedEvents += n;
      if (n < batch) break;
    }
    for (;;) {
      const n = await deleteExpiredLoginThrottles(deps.pool, { windowS: deps.config.loginFailureWindowS, limit: batch });
      loginThrottles += n;
      if (n < batch) break;
    }
    if (processedEvents + loginThrottles > 0) log.info({ processed_events: processedEvents, login_throttles: loginThrottles }, 'old rows deleted');
    return { processedEvents, loginThrottles };
  };

  const tick = () => {
    running = runOnce()
      .then(() => undefined)
      .catch((err: unknown) => log.warn({ err: { message: errorMessage(err) } }, 'housekeeping failed; next pass retries'));
  };

  return {
    runOnce,
    start: async () => {
      timer = setInterval(tick, deps.config.intervalS * 1000);
      timer.unref();
    },
    stop: async () => {
      if (timer) clearInterval(timer);
      await running;
    },
  };
}
