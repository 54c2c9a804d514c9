import { createTestDatabase, uniquePrefix, type TestDatabase } from '../../../test/support/infra';
import { startProxiedBroker, type ProxiedBroker } from '../../../test/support/proxied-broker';
import { idCounts, keysOnOnePartition, partitionOf, readWholeTopic } from '../../../test/support/broker-side';
import { waitFor } from '../../../test/support/wait-for';
import { insertOutboxRows, orderingProblems, outboxCount, startTestRelay, type TestOutboxRow } from './relay-harness';

/*
 * The network blip of issue 11, made deterministic: the broker appends the relay's Produce requests but
 * their answers never arrive (the proxy swallows six: kafkajs' try plus five retries). Whatever the relay
 * deleted must be in the topic — checked by a consumer reading the broker, not by the relay's counters.
 */
const TRIES = 6;
/** BLIP_REPEAT=20 runs each scenario 20 times on one broker (the acceptance). */
const REPEAT = Number(process.env.BLIP_REPEAT ?? 1);
const runs = Array.from({ length: REPEAT }, (_, i) => (REPEAT > 1 ? ` (run ${i + 1})` : ''));

describe('relay: a blip between relay and broker loses nothing', () => {
  let env: ProxiedBroker;
  let db: TestDatabase;
  beforeAll(async () => {
    env = await startProxiedBroker();
    db = await createTestDatabase();
  }, 120_000);
  afterAll(async () => {
    await db?.drop();
    await env?.stop();
  });

  async function expectAllInTopic(prefix: string, eventIds: string[]): Promise<Map<string, number>> {
    const counts = idCounts(await readWholeTopic(env.direct, `${prefix}accounts.user-events`));
    const missing = eventIds.filter((id) => !counts.has(id));
    expect(missing).toEqual([]);
    return counts;
  }

  test('when a round holds a user event and a mail request, then one produce request carries both topics', async () => {
    const prefix = uniquePrefix('one-request');
    const topics = [`${prefix}accounts.user-events`, `${prefix}mail.requests`];
    // Committed before the relay starts, so both land in one claimed round, like a registration's two rows.
    const ids = await insertOutboxRows(db.pool, [
      { key: `${prefix}user`, seq: 0 },
      { key: `${prefix}user`, seq: 1, topic: 'mail.requests' },
    ]);
    const before = env.proxy.produceRequests.length;
    const relay = await startTestRelay({ databaseUrl: db.url, pool: db.pool, brokers: env.proxied, prefix });
    try {
      await waitFor(async () => (await outboxCount(db.pool)) === 0, { timeoutMs: 30_000, message: 'outbox drained' });
      const requests = env.proxy.produceRequests.slice(before).filter((r) => r.topics.some((t) => topics.includes(t)));
      expect(requests.map((r) => [...r.topics].sort())).toEqual([[...topics].sort()]);
      const held = [
        ...(await readWholeTopic(env.direct, topics[0] ?? '')),
        ...(await readWholeTopic(env.direct, topics[1] ?? '')),
      ];
      expect(idCounts(held)).toEqual(new Map(ids.map((id) => [id, 1])));
    } finally {
      await relay.stop();
    }
  });

  test.each(runs)(
    'when the answers to row A are lost while row B (another key, same partition) waits, then both A and B are in Kafka%s',
    async () => {
      const prefix = uniquePrefix('blip-one');
      const topic = `${prefix}accounts.user-events`;
      const relay = await startTestRelay({ databaseUrl: db.url, pool: db.pool, brokers: env.proxied, prefix });
      try {
        const [k1, k2] = keysOnOnePartition(prefix, 2);
        const before = env.proxy.produceRequests.length;
        env.proxy.dropProduceResponses(TRIES, topic);
        const [a] = await insertOutboxRows(db.pool, [{ key: k1 ?? '', seq: 0 }]);
        await waitFor(() => env.proxy.produceRequests.slice(before).some((r) => r.topics.includes(topic)), {
          message: 'A in flight',
        });
        const [b] = await insertOutboxRows(db.pool, [{ key: k2 ?? '', seq: 0 }]);
        await waitFor(async () => env.proxy.pendingDrops() === 0 && (await outboxCount(db.pool)) === 0, {
          timeoutMs: 60_000,
          message: 'outbox drained after the blip',
        });
        await expectAllInTopic(prefix, [a ?? '', b ?? '']);
      } finally {
        env.proxy.heal();
        await relay.stop();
      }
    },
  );

  test.each(runs)(
    'when a second relay publishes A during the blip and the first then sends a new row C to that partition, then C is in Kafka%s',
    async () => {
      const prefix = uniquePrefix('blip-two');
      const topic = `${prefix}accounts.user-events`;
      // The first relay: one loop, a long pause after a failure, no polling (NOTIFY wakes it), so that the
      // second relay takes A over while the first waits.
      const first = await startTestRelay({
        databaseUrl: db.url,
        pool: db.pool,
        brokers: env.proxied,
        prefix,
        env: {
          RELAY_CONCURRENCY: '1',
          RELAY_RETRY_BASE_MS: '3000',
          RELAY_RETRY_MAX_MS: '3000',
          RELAY_POLL_INTERVAL_MS: '600000',
        },
      });
      let second: Awaited<ReturnType<typeof startTestRelay>> | undefined;
      try {
        const [k1, k3] = keysOnOnePartition(prefix, 2);
        const before = env.proxy.produceRequests.length;
        env.proxy.dropProduceResponses(TRIES, topic);
        const [a] = await insertOutboxRows(db.pool, [{ key: k1 ?? '', seq: 0 }]);
        await waitFor(() => env.proxy.produceRequests.slice(before).some((r) => r.topics.includes(topic)), {
          message: 'A in flight',
        });
        second = await startTestRelay({
          databaseUrl: db.url,
          pool: db.pool,
          brokers: env.direct,
          prefix,
          env: { RELAY_CONCURRENCY: '1', RELAY_POLL_INTERVAL_MS: '50' },
        });
        await waitFor(async () => env.proxy.pendingDrops() === 0 && (await outboxCount(db.pool)) === 0, {
          timeoutMs: 60_000,
          message: 'A published',
        });
        await second.stop();
        second = undefined;
        const [c] = await insertOutboxRows(db.pool, [{ key: k3 ?? '', seq: 0 }]);
        await waitFor(async () => (await outboxCount(db.pool)) === 0, {
          timeoutMs: 30_000,
          message: 'C published by the first relay',
        });
        await expectAllInTopic(prefix, [a ?? '', c ?? '']);
      } finally {
        env.proxy.heal();
        await second?.stop();
        await first.stop();
      }
    },
  );

  test.each(runs)(
    "when one partition cannot be written (its answers never arrive), then the other partitions' rows are published meanwhile, and its own once it heals%s",
    async () => {
      const prefix = uniquePrefix('blip-part');
      const topic = `${prefix}accounts.user-events`;
      const relay = await startTestRelay({ databaseUrl: db.url, pool: db.pool, brokers: env.proxied, prefix });
      try {
        const [bad] = keysOnOnePartition(`${prefix}bad`, 1);
        const badPartition = partitionOf(bad ?? '', 3);
        const good = Array.from({ length: 12 }, (_, i) => `${prefix}good-${i}`).filter(
          (k) => partitionOf(k, 3) !== badPartition,
        );
        env.proxy.dropProduceResponses(Infinity, topic, badPartition);
        const rows: TestOutboxRow[] = [];
        for (let seq = 0; seq < 3; seq++) for (const key of [bad ?? '', ...good]) rows.push({ key, seq });
        const ids = await insertOutboxRows(db.pool, rows);
        const pendingKeys = async () =>
          (await db.pool.query<{ key: string }>('SELECT DISTINCT key FROM outbox')).rows.map((r) => r.key);
        await waitFor(
          async () => {
            const keys = await pendingKeys();
            return keys.length === 1 && keys[0] === bad;
          },
          { timeoutMs: 60_000, message: "every key but the stalled partition's published" },
        );
        env.proxy.heal();
        await waitFor(async () => (await outboxCount(db.pool)) === 0, {
          timeoutMs: 60_000,
          message: 'the healed partition published',
        });
        const records = await readWholeTopic(env.direct, topic);
        const counts = idCounts(records);
        expect(ids.filter((id) => !counts.has(id))).toEqual([]);
        expect(orderingProblems(records, new Map([bad ?? '', ...good].map((k) => [k, 3])))).toEqual([]);
      } finally {
        env.proxy.heal();
        await relay.stop();
      }
    },
    150_000,
  );
});
