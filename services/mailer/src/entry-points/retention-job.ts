import type { Pool } from '@shared/db';
import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import { deleteExpiredRequests } from '../data-access/requests-repository';

export type RetentionJob = { start: () => Promise<void>; stop: () => Promise<void>; runOnce: () => Promise<number> };

/**
 * Deletes finished inbox rows older than `retentionDays`, every `everyMs` (and once at start), in
 * batches. Several instances may run it side by side (SKIP LOCKED); a failure (PostgreSQL down) is
 * logged and retried at the next tick.
 */
export function createRetentionJob(opts: { pool: Pool; retentionDays: number; logger: Logger; everyMs?: number; batchSize?: number }): RetentionJob {
  const log = opts.logger.child({ component: 'retention' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;

  const runOnce = async (): Promise<number> => {
    const deleted = await deleteExpiredRequests(opts.pool, { olderThanDays: opts.retentionDays, ...(opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {}) });
    if (deleted > 0) log.info({ deleted, retention_days: opts.retentionDays }, 'finished mail requests deleted (retention)');
    return deleted;
  };
  const tick = () => {
    if (running) return;
    running = runOnce()
      .catch((err: unknown) => log.warn({ err: { message: errorMessage(err) } }, 'retention delete failed; will retry'))
      .finally(() => (running = undefined));
  };

  return {
    start: async () => {
      tick();
      timer = setInterval(tick, opts.everyMs ?? 5 * 60_000);
      timer.unref();
    },
    stop: async () => {
      clearInterval(timer);
      timer = undefined;
      await running;
    },
    runOnce,
  };
}
