import {
  collectMessages,
  createTestDatabase,
  testBrokers,
  uniquePrefix,
  type TestDatabase,
} from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { idCounts, partitionOf, readWholeTopic } from '../../../test/support/broker-side';
import {
  insertOutboxRows,
  metricValue,
  orderingProblems,
  outboxCount,
  startTestRelay,
  type TestOutboxRow,
} from './relay-harness';

describe('relay dead letters', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  test(
    'when the broker rejects a row for good (bigger than its 1 MiB max), the row is dead-lettered and the rows ' +
      'after it, of its key and others, are published in order',
    async () => {
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
        const { rows } = await db.pool.query<{ event_id: string; error: string }>(
          'SELECT event_id, error FROM outbox_dead_letters',
        );
        expect(rows).toEqual([
          { event_id: tooLarge, error: expect.stringMatching(/larger than the max message size/) },
        ]);
        expect(await metricValue(relay.registry, 'outbox_dead_letters_total', { topic: 'accounts.user-events' })).toBe(
          1,
        );
        expect(
          await metricValue(relay.registry, 'outbox_publish_errors_total', { topic: 'accounts.user-events' }),
        ).toBeGreaterThanOrEqual(1);
        expect(await metricValue(relay.registry, 'outbox_published_total', { topic: 'accounts.user-events' })).toBe(3);
      } finally {
        await collector.stop();
        await relay.stop();
      }
    },
  );

  test(
    'when a poisoned row sits among partitions holding several rows each, it is dead-lettered and every other ' +
      'row is published exactly once, each key in order',
    async () => {
      const prefix = uniquePrefix('relay-poison');
      const topic = `${prefix}accounts.user-events`;
      const keys = Array.from({ length: 6 }, (_, i) => `poison-user-${i}`);
      expect(new Set(keys.map((k) => partitionOf(k, 3))).size).toBeGreaterThan(1);
      const rows: TestOutboxRow[] = [];
      for (let seq = 0; seq < 4; seq++) for (const key of keys) rows.push({ key, seq });
      // The poison: the third row of the first key, bigger than the broker's 1 MiB limit.
      const poisonAt = 2 * keys.length;
      rows[poisonAt] = { key: keys[0] ?? '', seq: 2, payload: { seq: 2, blob: 'x'.repeat(1_200_000) } };
      // Committed before the relay starts, so they land in one claimed batch.
      const eventIds = await insertOutboxRows(db.pool, rows);
      const relay = await startTestRelay({ databaseUrl: db.url, pool: db.pool, brokers: testBrokers(), prefix });
      try {
        await waitFor(async () => (await outboxCount(db.pool)) === 0, { timeoutMs: 30_000, message: 'outbox drained' });
        const records = await readWholeTopic(testBrokers(), topic);
        const counts = idCounts(records);
        const expected = eventIds.filter((_, i) => i !== poisonAt);
        expect(expected.filter((id) => counts.get(id) !== 1).map((id) => `${id}: ${counts.get(id) ?? 0}`)).toEqual([]);
        expect(records).toHaveLength(expected.length);
        const perKey = new Map(keys.map((k) => [k, 4]));
        // The poisoned key lacks seq 2 only: the ordering check expects 0, 1, 3.
        const problems = orderingProblems(records, perKey).filter((p) => p !== `key ${keys[0]}: 3 of 4 rows arrived`);
        expect(problems).toEqual([]);
        const { rows: dead } = await db.pool.query<{ event_id: string }>(
          'SELECT event_id FROM outbox_dead_letters WHERE event_id = $1',
          [eventIds[poisonAt]],
        );
        expect(dead).toHaveLength(1);
      } finally {
        await relay.stop();
      }
    },
  );

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
      const { rows } = await db.pool.query<{ error: string }>(
        'SELECT error FROM outbox_dead_letters WHERE event_id = $1',
        [bogus],
      );
      expect(rows[0]?.error).toMatch(/not a contract topic/);
      expect(await metricValue(relay.registry, 'outbox_dead_letters_total', { topic: 'unknown' })).toBe(1);
    } finally {
      await collector.stop();
      await relay.stop();
    }
  });

  test(
    'when an operator re-inserts a dead-lettered row (same event id) and it is rejected again, its dead letter ' +
      'is replaced by the new attempt: nothing leaves the outbox without a record',
    async () => {
      const prefix = uniquePrefix('relay-dlq');
      const [eventId] = await insertOutboxRows(db.pool, [{ key: 'user-d', seq: 0, topic: 'first.bogus-topic' }]);
      const relay = await startTestRelay({ databaseUrl: db.url, pool: db.pool, brokers: testBrokers(), prefix });
      type DeadLetter = { outbox_id: string; topic: string; payload: unknown; error: string; dead_lettered_at: Date };
      const deadLetters = async () =>
        (
          await db.pool.query<DeadLetter>(
            'SELECT outbox_id, topic, payload, error, dead_lettered_at FROM outbox_dead_letters WHERE event_id = $1',
            [eventId],
          )
        ).rows;
      try {
        const [first] = await waitFor(
          async () => {
            const rows = await deadLetters();
            return rows.length === 1 && rows;
          },
          { message: 'first attempt dead-lettered' },
        );

        // The operator "fixes" the row and puts it back under the same event id; it is still unpublishable.
        await db.pool.query(
          `INSERT INTO outbox (event_id, topic, key, type, aggregate_type, occurred_at, payload)
         VALUES ($1, 'second.bogus-topic', 'user-d', 'user.registered', 'user', now(), '{"seq": 0, "fixed": true}')`,
          [eventId],
        );
        await waitFor(async () => (await outboxCount(db.pool)) === 0, { message: 'outbox drained' });
        await waitFor(
          async () => (await metricValue(relay.registry, 'outbox_dead_letters_total', { topic: 'unknown' })) === 2,
          { message: 'second rejection counted' },
        );

        const rows = await deadLetters();
        expect(rows).toEqual([
          {
            outbox_id: expect.any(String),
            topic: 'second.bogus-topic',
            payload: { seq: 0, fixed: true },
            error: expect.stringMatching(/second\.bogus-topic.*not a contract topic/),
            dead_lettered_at: expect.any(Date),
          },
        ]);
        expect(rows[0]?.outbox_id).not.toBe(first?.outbox_id);
        expect(rows[0]?.dead_lettered_at.getTime()).toBeGreaterThan(first?.dead_lettered_at.getTime() ?? Infinity);
      } finally {
        await relay.stop();
      }
    },
  );
});
