import type { Pool } from '@shared/db';
import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import { analyzeOutbox, readBacklog } from '../data-access/outbox-repository';
import { plannerStatisticsStale } from '../domain/planner-statistics';
import type { RelayMetrics } from '../metrics';

export type OutboxGauges = { start: () => Promise<void>; stop: () => void };

/**
 * Keeps the outbox backlog gauges (row count, oldest row's age) fresh: once at start, then every
 * `intervalMs` on an unref'd timer (it never keeps the process alive). A failed read keeps the last values
 * and is logged at debug: the gauges are a view, the relay does not depend on them.
 *
 * The same read tells whether PostgreSQL's statistics still describe the outbox: analyzed while nearly
 * empty, then a backlog builds up (Kafka down), the planner believes the table holds a row or two and
 * may turn the claim into a scan per claimed row — on a 100,000-row backlog, a 14-second claim that
 * hits the statement timeout, over and over, until autovacuum gets round to it. When the backlog
 * outgrows the statistics (domain/planner-statistics.ts), the relay runs ANALYZE itself.
 */
export function createOutboxGauges(opts: {
  pool: Pool;
  metrics: Pick<RelayMetrics, 'backlog' | 'oldestAge'>;
  logger: Logger;
  intervalMs: number;
}): OutboxGauges {
  let timer: NodeJS.Timeout | undefined;
  let analyzeWarned = false;
  const analyze = async (backlog: number, plannerRows: number): Promise<void> => {
    try {
      await analyzeOutbox(opts.pool);
      opts.logger.info(
        { backlog, planner_rows: plannerRows },
        'outbox statistics refreshed: the backlog outgrew what the planner knew',
      );
    } catch (err) {
      // Not the table's owner, say: autovacuum remains the only one to refresh them.
      if (!analyzeWarned) opts.logger.warn({ err: { message: errorMessage(err) } }, 'could not ANALYZE the outbox');
      analyzeWarned = true;
    }
  };
  const refresh = async (): Promise<void> => {
    try {
      const { backlog, oldestAgeSeconds, plannerRows } = await readBacklog(opts.pool);
      opts.metrics.backlog.set(backlog);
      opts.metrics.oldestAge.set(oldestAgeSeconds);
      if (plannerStatisticsStale(backlog, plannerRows)) await analyze(backlog, plannerRows);
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
