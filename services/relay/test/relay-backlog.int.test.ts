import { Registry } from 'prom-client';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { readBacklog } from '../src/data-access/outbox-repository';
import { BACKLOG_COUNT_CAP } from '../src/data-access/outbox-repository';
import { createRelayMetrics } from '../src/metrics';
import { createOutboxGauges } from '../src/entry-points/outbox-gauges';
import { STALE_STATISTICS_MIN_BACKLOG } from '../src/domain/planner-statistics';
import { createLogger } from '@shared/logger';
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
    expect(await readBacklog(db.pool)).toEqual({ backlog: 0, oldestAgeSeconds: 0, plannerRows: expect.any(Number) });

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

  test('a backlog that outgrows the statistics of an outbox analyzed while empty makes the relay ANALYZE it', async () => {
    await db.pool.query('DELETE FROM outbox');
    await db.pool.query('ANALYZE outbox');
    const plannerRows = async () =>
      (await db.pool.query<{ n: number }>(`SELECT reltuples::float8 AS n FROM pg_class WHERE oid = 'outbox'::regclass`))
        .rows[0]?.n ?? -1;
    expect(await plannerRows()).toBe(0);
    const rows = STALE_STATISTICS_MIN_BACKLOG + 500;
    await db.pool.query(
      `INSERT INTO outbox (event_id, topic, key, type, aggregate_type, occurred_at, payload)
       SELECT gen_random_uuid(), 'accounts.user-events', 'user-' || (i % 1000), 'user.registered', 'user', now(), '{}'
       FROM generate_series(1, $1) AS i`,
      [rows],
    );
    const registry = new Registry();
    const gauges = createOutboxGauges({
      pool: db.pool,
      metrics: createRelayMetrics(registry),
      logger: createLogger({ service: 'relay', level: 'silent' }),
      intervalMs: 60_000,
    });
    await gauges.start();
    gauges.stop();
    expect(await plannerRows()).toBeGreaterThan(rows / 2);
  });
});
