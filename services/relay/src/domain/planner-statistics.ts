/** Below this many pending rows any plan is fast: statistics are not worth refreshing. */
export const STALE_STATISTICS_MIN_BACKLOG = 5_000;

/**
 * Whether the planner's idea of the outbox's size (pg_class.reltuples; -1: never analyzed, the planner
 * then estimates from the table's pages) is far below the pending rows: a backlog of at least
 * STALE_STATISTICS_MIN_BACKLOG rows, more than four times what the statistics say.
 */
export function plannerStatisticsStale(backlog: number, plannerRows: number): boolean {
  if (plannerRows < 0) return false;
  return backlog >= STALE_STATISTICS_MIN_BACKLOG && backlog > 4 * plannerRows;
}
