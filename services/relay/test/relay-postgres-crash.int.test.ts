import { migrate } from '../../../scripts/migrate';
import { idCounts, readWholeTopic } from '../../../test/support/broker-side';
import { testBrokers, uniquePrefix } from '../../../test/support/infra';
import { crashablePostgresSuite } from '../../../test/support/private-postgres';
import { waitFor } from '../../../test/support/wait-for';
import { insertOutboxRows, orderingProblems, outboxCount, startTestRelay, type TestOutboxRow } from './relay-harness';

/*
 * The relay deletes what the broker acknowledged with an asynchronous commit (no wait for the WAL flush).
 * What that may cost is shown here on a PostgreSQL of the test's own: its WAL writer is paused, so the
 * deletes stay in the server's memory; the server is then crashed and restarted. The deleted rows come
 * back and are published again — every row in the topic, per key in order, the comeback counted as
 * duplicates — and the rows the writer committed are never lost. Nothing else on this server may flush
 * WAL meanwhile: no background writer or checkpoint, and autovacuum waits.
 */
const KEYS = 5;
const PER_KEY = 6;

describe('relay: a PostgreSQL crash after the relay deleted published rows', () => {
  const db = crashablePostgresSuite((url) => migrate({ databaseUrl: url }));

  test('when the deletes were not flushed yet, then the rows come back and go out again: in order, none lost', async () => {
    const prefix = uniquePrefix('pg-crash-relay');
    const topic = `${prefix}accounts.user-events`;
    const rows: TestOutboxRow[] = [];
    for (let seq = 0; seq < PER_KEY; seq++) for (let k = 0; k < KEYS; k++) rows.push({ key: `${prefix}k${k}`, seq });
    // The writer's commit waits for its flush, as accounts' does: these rows are durable.
    const eventIds = await insertOutboxRows(db.pool(), rows);

    await db.crashAfter(async () => {
      const first = await startTestRelay({ databaseUrl: db.url(), pool: db.pool(), brokers: testBrokers(), prefix });
      try {
        await waitFor(async () => (await outboxCount(db.pool())) === 0, {
          timeoutMs: 30_000,
          message: 'outbox drained',
        });
      } finally {
        await first.stop();
      }
      expect(idCounts(await readWholeTopic(testBrokers(), topic))).toEqual(new Map(eventIds.map((id) => [id, 1])));
    });
    // The crash undid the deletes, which were still in the server's memory, and nothing else.
    const back = await outboxCount(db.pool());
    expect(back).toBe(rows.length);

    const second = await startTestRelay({ databaseUrl: db.url(), pool: db.pool(), brokers: testBrokers(), prefix });
    try {
      await waitFor(async () => (await outboxCount(db.pool())) === 0, { timeoutMs: 30_000, message: 'drained again' });
    } finally {
      await second.stop();
    }
    const held = await readWholeTopic(testBrokers(), topic);
    const expected = new Map(Array.from({ length: KEYS }, (_, k) => [`${prefix}k${k}`, PER_KEY]));
    expect(orderingProblems(held, expected)).toEqual([]);
    expect(idCounts(held)).toEqual(new Map(eventIds.map((id) => [id, 2])));
  }, 120_000);
});
