import {
  collectMessages,
  createTestDatabase,
  testBrokers,
  uniquePrefix,
  type TestDatabase,
} from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { insertOutboxRows, metricValue, outboxCount, startTestRelay } from './relay-harness';

// The poll fallback is set to 60 s here: whatever arrives within the waits below was woken by NOTIFY.
const NO_POLL = { RELAY_POLL_INTERVAL_MS: '60000' };

describe('relay wake-up on commit (LISTEN/NOTIFY)', () => {
  let db: TestDatabase;
  const prefix = uniquePrefix('relay-wake');

  const cleanups: (() => Promise<void>)[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });
  afterAll(async () => {
    await db.drop();
  });

  test(
    'when a row commits, the relay publishes it at once although it polls only every 60 s, as the contract ' +
      'envelope with key and headers',
    async () => {
      const relay = await startTestRelay({
        databaseUrl: db.url,
        pool: db.pool,
        brokers: testBrokers(),
        prefix,
        env: NO_POLL,
      });
      cleanups.push(relay.stop);
      const collector = await collectMessages([`${prefix}accounts.user-events`, `${prefix}mail.requests`]);
      cleanups.push(collector.stop);

      await waitFor(
        () =>
          db.pool
            .query(`SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN outbox'`)
            .then((r) => r.rowCount === 1),
        {
          message: 'relay LISTENs',
        },
      );
      const [eventId] = await insertOutboxRows(db.pool, [
        { key: 'user-1', seq: 0, topic: 'mail.requests', headers: { traceparent: 'abc', id: 'not-this' } },
      ]);

      const [message] = await collector.waitForMessages(1, 5_000);

      expect(message?.topic).toBe(`${prefix}mail.requests`);
      expect(message?.key).toBe('user-1');
      expect(message?.headers).toEqual({ traceparent: 'abc', id: eventId, type: 'user.registered' });
      expect(JSON.parse(message?.value ?? 'null')).toEqual({
        id: eventId,
        type: 'user.registered',
        version: 1,
        occurred_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/),
        aggregate_type: 'user',
        aggregate_id: 'user-1',
        payload: { seq: 0 },
      });
      await waitFor(async () => (await outboxCount(db.pool)) === 0, { message: 'published row deleted' });
      expect(await metricValue(relay.registry, 'outbox_published_total', { topic: 'mail.requests' })).toBe(1);
      expect(await metricValue(relay.registry, 'outbox_published_total', { topic: 'accounts.user-events' })).toBe(0);
    },
  );

  test(
    'when the LISTEN connection is killed, the relay ' + 'reconnects and catches up with rows committed meanwhile',
    async () => {
      const relay = await startTestRelay({
        databaseUrl: db.url,
        pool: db.pool,
        brokers: testBrokers(),
        prefix: `${prefix}b.`,
        env: { ...NO_POLL, RELAY_RETRY_BASE_MS: '1000' },
      });
      cleanups.push(relay.stop);
      const collector = await collectMessages([`${prefix}b.accounts.user-events`]);
      cleanups.push(collector.stop);
      const listenPid = async () =>
        (
          await db.pool.query<{ pid: number }>(
            `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN outbox'`,
          )
        ).rows[0]?.pid;
      const firstPid = await waitFor(listenPid, { message: 'relay LISTENs' });

      // The reconnect waits >= 500 ms (RELAY_RETRY_BASE_MS 1000, jittered): this row commits while no one listens.
      await db.pool.query('SELECT pg_terminate_backend($1)', [firstPid]);
      await insertOutboxRows(db.pool, [{ key: 'user-2', seq: 0 }]);

      await collector.waitForMessages(1, 10_000);
      const secondPid = await waitFor(listenPid, { message: 'relay LISTENs again' });
      expect(secondPid).not.toBe(firstPid);

      // And the new subscription wakes it like the first one did.
      await insertOutboxRows(db.pool, [{ key: 'user-2', seq: 1 }]);
      await collector.waitForMessages(2, 5_000);
      expect(collector.messages.map((m) => JSON.parse(m.value ?? '{}').payload.seq)).toEqual([0, 1]);
    },
  );
});
