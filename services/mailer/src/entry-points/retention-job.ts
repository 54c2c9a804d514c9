import type { Pool } from '@shared/db';
import type { Logger } from '@shared/logger';
import { createWorkLoop } from '@shared/work-loop';
import { deleteExpiredRequests } from '../data-access/requests-repository';

export type RetentionJob = { start: () => Promise<void>; stop: () => Promise<void>; runOnce: () => Promise<number> };

/**
 * Deletes finished inbox rows older than `retentionDays`, every `everyMs` (and once at start), in
 * batches. Several instances may run it side by side (SKIP LOCKED); a failure (PostgreSQL down) is
 * logged and retried with backoff.
 */
export function createRetentionJob(opts: {
  pool: Pool;
  retentionDays: number;
  logger: Logger;
  everyMs?: number;
  batchSize?: number;
}): RetentionJob {
  const log = opts.logger.child({ component: 'retention' });

  const runOnce = async (): Promise<number> => {
    const batch = opts.batchSize !== undefined ? { batchSize: opts.batchSize } : {};
    const deleted = await deleteExpiredRequests(opts.pool, { olderThanDays: opts.retentionDays, ...batch });
    if (deleted > 0)
      log.info({ deleted, retention_days: opts.retentionDays }, 'finished mail requests deleted (retention)');
    return deleted;
  };
  const everyMs = opts.everyMs ?? 5 * 60_000;
  const loop = createWorkLoop({
    runOnce: async () => void (await runOnce()),
    idleMs: everyMs,
    backoff: { baseMs: 1_000, maxMs: everyMs, jitter: 'equal' },
    logger: log,
    failureMessage: 'retention delete failed; will retry',
  });

  return { start: loop.start, stop: loop.stop, runOnce };
}
