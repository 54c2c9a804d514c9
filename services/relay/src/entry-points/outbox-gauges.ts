import type { Pool } from '@shared/db';
import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import { readBacklog } from '../data-access/outbox-repository';
import type { RelayMetrics } from '../metrics';

export type OutboxGauges = { start: () => Promise<void>; stop: () => void };

/**
 * Keeps the outbox backlog gauges (row count, oldest row's age) fresh: once at start, then every
 * `intervalMs` on an unref'd timer (it never keeps the process alive). A failed read keeps the last values
 * and is logged at debug: the gauges are a view, the relay does not depend on them.
 */
export function createOutboxGauges(opts: {
  pool: Pool;
  metrics: Pick<RelayMetrics, 'backlog' | 'oldestAge'>;
  logger: Logger;
  intervalMs: number;
}): OutboxGauges {
  let timer: NodeJS.Timeout | undefined;
  const refresh = async (): Promise<void> => {
    try {
      const { backlog, oldestAgeSeconds } = await readBacklog(opts.pool);
      opts.metrics.backlog.set(backlog);
      opts.metrics.oldestAge.set(oldestAgeSeconds);
    } catch (err) {
      opts.logger.debug({ err: { message: errorMessage(err) } }, 'could not refresh outbox gauges');
    }
  };
  return {
    start: async () => {
      await refresh();
      timer = setInterval(() => void refresh(), opts.intervalMs);
      timer.unref();
    },
    stop: () => clearInterval(timer),
  };
}
