import { randomUUID } from 'node:crypto';
import { createLogger } from '@shared/logger';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { createHousekeeping } from '../src/entry-points/housekeeping';

describe('accounts housekeeping', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it(
    'deletes dedupe records past their retention and expired login windows, in batches, and keeps the recent ' + 'ones',
    async () => {
      await db.pool.query(
        `INSERT INTO processed_events (consumer, event_id, processed_at)
       SELECT 'accounts.delivery-status', gen_random_uuid(), now() - interval '20 days' FROM generate_series(1, 25)`,
      );
      const recent = randomUUID();
      await db.pool.query(`INSERT INTO processed_events (consumer, event_id) VALUES ('accounts.delivery-status', $1)`, [
        recent,
      ]);
      await db.pool.query(
        `INSERT INTO login_throttle (address, failures, window_started_at) VALUES ('old@example.test', 5, now() - interval '2 hours'), ('new@example.test', 3, now())`,
      );
      const housekeeping = createHousekeeping({
        pool: db.pool,
        logger: createLogger({ service: 'test', level: 'silent' }),
        config: { intervalS: 3600, processedEventsRetentionS: 14 * 86_400, loginFailureWindowS: 900, batchSize: 10 },
      });

      expect(await housekeeping.runOnce()).toEqual({ processedEvents: 25, loginThrottles: 1 });

      const events = await db.pool.query<{ event_id: string }>('SELECT event_id FROM processed_events');
      expect(events.rows.map((r) => r.event_id)).toEqual([recent]);
      const throttles = await db.pool.query<{ address: string }>('SELECT address FROM login_throttle');
      expect(throttles.rows.map((r) => r.address)).toEqual(['new@example.test']);
    },
  );
});
