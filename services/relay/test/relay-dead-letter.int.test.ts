import { collectMessages, createTestDatabase, testBrokers, uniquePrefix, type TestDatabase } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { insertOutboxRows, metricValue, outboxCount, startTestRelay } from './relay-harness';

describe('relay dead letters', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  test('when the broker rejects a row for good (bigger than its 1 MiB max), the row is dead-lettered and the rows after it, of its key and others, are published in order', async () => {
    const prefix = uniquePrefix('relay-dlq');
    // Committed before the relay starts, so all four land in one claimed batch.
    const [, tooLarge] = await insertOutboxRows(db.pool, [
      { key: 'user-a', seq: 0 },
      { key: 'user-a', seq: 1, payload: { seq: 1, blob: 'x'.repeat(1_200_000) } },
      { key: 'user-a', seq: 2 },
      { key: 'user-b', seq: 0 },
    ]);
    const relay = await startTestRelay({ databaseUrl: db.url, pool: db.pool, brokers: testBrokers(), prefix });
    const collector = await collectMessages([`${prefix}accounts.user-events`]);
    try {
      await waitFor(async () => (await outboxCount(db.pool)) === 0, { timeoutMs: 30_000, message: 'outbox drained' });
      await collector.waitForMessages(3);

      const seen = collector.messages.map((m) => `${m.key}:${JSON.parse(m.value ?? '{}').payload.seq}`);
      expect(seen.filter((s) => s.startsWith('user-a'))).toEqual(['user-a:0', 'user-a:2']);
      expect(seen).toContain('user-b:0');
      const { rows } = await db.pool.query<{ event_id: string; error: string }>('SELECT event_id, error FROM outbox_dead_letters');
      expect(rows).toEqual([{ event_id: tooLarge, error: expect.stringMatching(/larger than the max message size/) }]);
      expect(await metricValue(relay.registry, 'outbox_dead_letters_total', { topic: 'accounts.user-events' })).toBe(1);
      expect(await metricValue(relay.registry, 'outbox_publish_errors_total', { topic: 'accounts.user-events' })).toBeGreaterThanOrEqual(1);
      expect(await metricValue(relay.registry, 'outbox_published_total', { topic: 'accounts.user-events' })).toBe(3);
    } finally {
      await collector.stop();
      await relay.stop();
    }
  });

  test('when a row names a topic outside the contract, it is dead-lettered without being sent', async () => {
    const prefix = uniquePrefix('relay-dlq');
    const [bogus] = await insertOutboxRows(db.pool, [
      { key: 'user-c', seq: 0, topic: 'no.such-topic' },
      { key: 'user-c', seq: 1 },
    ]);
    const relay = await startTestRelay({ databaseUrl: db.url, pool: db.pool, brokers: testBrokers(), prefix });
    const collector = await collectMessages([`${prefix}accounts.user-events`]);
    try {
      await collector.waitForMessages(1);
      await waitFor(async () => (await outboxCount(db.pool)) === 0, { message: 'outbox drained' });
      const { rows } = await db.pool.query<{ error: string }>('SELECT error FROM outbox_dead_letters WHERE event_id = $1', [bogus]);
      expect(rows[0]?.error).toMatch(/not a contract topic/);
      expect(await metricValue(relay.registry, 'outbox_dead_letters_total', { topic: 'unknown' })).toBe(1);
    } finally {
      await collector.stop();
      await relay.stop();
    }
  });
});
