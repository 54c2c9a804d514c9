import { Registry } from 'prom-client';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { readBacklog } from '../src/data-access/outbox-repository';
import { BACKLOG_COUNT_CAP } from '../src/data-access/outbox-repository';
import { createRelayMetrics } from '../src/metrics';
import { insertOutboxRows } from './relay-harness';

describe('relay backlog gauges', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  test('the backlog count stops at its cap (no full scan of a huge outbox), the oldest row age does not', async () => {
    expect(await readBacklog(db.pool)).toEqual({ backlog: 0, oldestAgeSeconds: 0 });

    await insertOutboxRows(
      db.pool,
      Array.from({ length: 7 }, (_, seq) => ({ key: `user-${seq % 2}`, seq })),
    );
    await db.pool.query(
      `UPDATE outbox SET created_at = clock_timestamp() - interval '90 seconds' WHERE id = (SELECT min(id) FROM outbox)`,
    );

    expect((await readBacklog(db.pool)).backlog).toBe(7);
    const capped = await readBacklog(db.pool, 5);
    expect(capped.backlog).toBe(5);
    expect(capped.oldestAgeSeconds).toBeGreaterThanOrEqual(90);
    expect(capped.oldestAgeSeconds).toBeLessThan(120);
  });

  test('the backlog metric tells operators about the cap', async () => {
    const registry = new Registry();
    createRelayMetrics(registry);
    const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'outbox_backlog');
    expect(metric?.help).toContain(`up to ${BACKLOG_COUNT_CAP}`);
  });
});
