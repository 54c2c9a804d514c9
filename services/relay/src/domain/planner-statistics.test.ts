import { plannerStatisticsStale, STALE_STATISTICS_MIN_BACKLOG } from './planner-statistics';

describe('plannerStatisticsStale', () => {
  it('asks for ANALYZE when a large backlog meets statistics of a nearly empty table', () => {
    expect(plannerStatisticsStale(STALE_STATISTICS_MIN_BACKLOG, 0)).toBe(true);
    expect(plannerStatisticsStale(100_000, 2)).toBe(true);
  });

  it('leaves small backlogs, fresh statistics and never-analyzed tables alone', () => {
    expect(plannerStatisticsStale(STALE_STATISTICS_MIN_BACKLOG - 1, 0)).toBe(false);
    expect(plannerStatisticsStale(100_000, 30_000)).toBe(false);
    expect(plannerStatisticsStale(100_000, -1)).toBe(false);
  });
});
