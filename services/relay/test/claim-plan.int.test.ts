import type { PoolClient } from '@shared/db';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { claimOutboxBatch, claimStatement } from '../src/data-access/outbox-repository';

/*
 * The claim must cost about the rows it claims, whatever the outbox holds and whatever the planner
 * believes: the plans below run on an outbox analyzed while EMPTY (the state after a quiet period),
 * then filled by a backlog, as after a Kafka outage. Work is read from EXPLAIN ANALYZE's row counts,
 * not from timings.
 */

type PlanNode = {
  'Node Type': string;
  'Actual Rows'?: number;
  'Rows Removed by Join Filter'?: number;
  Plans?: PlanNode[];
};

const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

describe('relay claim on stale statistics', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  async function inRolledBackTx<T>(fn: (client: PoolClient) => Promise<T>): Promise<T> {
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      return await fn(client);
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  }

  /** The state after a quiet period: the outbox empty and analysed so. */
  async function emptyAnalyzedOutbox(): Promise<void> {
    await db.pool.query('DELETE FROM outbox');
    await db.pool.query('ANALYZE outbox');
  }

  /** A backlog of `keys` keys × `perKey` rows, ids interleaved across keys (row i belongs to key i mod keys). */
  async function fillBacklog(target: Pick<PoolClient, 'query'>, keys: number, perKey: number): Promise<void> {
    await target.query(
      `INSERT INTO outbox (event_id, topic, key, type, aggregate_type, occurred_at, payload)
       SELECT gen_random_uuid(), 'accounts.user-events', 'user-' || (i % $1), 'user.registered', 'user', now(), '{}'
       FROM generate_series(0, $2 - 1) AS i ORDER BY i`,
      [keys, keys * perKey],
    );
  }

  async function backlogOnEmptyStatistics(keys: number, perKey: number): Promise<void> {
    await emptyAnalyzedOutbox();
    await fillBacklog(db.pool, keys, perKey);
  }

  test('fewer heads than the batch: followers are read from each head, not by joining the outbox to the heads', async () => {
    // As the relay runs it: a named statement, planned while the outbox was empty, then a backlog.
    await emptyAnalyzedOutbox();
    const plan = await inRolledBackTx(async (client) => {
      await client.query(`SET LOCAL plan_cache_mode = force_generic_plan`);
      await client.query(`PREPARE claim_plan_test(bigint) AS ${claimStatement(0).text}`);
      try {
        await client.query(`EXPLAIN EXECUTE claim_plan_test(3000)`);
        await fillBacklog(client, 40, 250);
        const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
          `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE claim_plan_test(3000)`,
        );
        return rows[0]?.['QUERY PLAN'][0].Plan as PlanNode;
      } finally {
        await client.query('DEALLOCATE claim_plan_test');
      }
    });
    expect(plan['Actual Rows']).toBe(3000);
    // Joining every pending row against every head compared ~120,000 pairs here (13 s per claim at the
    // relay bench's scale); reading followers from the heads compares none.
    const compared = nodes(plan).reduce((n, p) => n + (p['Rows Removed by Join Filter'] ?? 0), 0);
    expect(compared).toBeLessThan(1_000);
  });

  test('every key claimed is claimed as a prefix of its pending rows, in id order, up to the batch size', async () => {
    await backlogOnEmptyStatistics(40, 250);
    const claimed = await inRolledBackTx((client) => claimOutboxBatch(client, 3000));
    expect(claimed).toHaveLength(3000);
    const ids = claimed.map((r) => BigInt(r.id));
    expect([...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))).toEqual(ids);

    const { rows: all } = await db.pool.query<{ id: string; key: string }>('SELECT id, key FROM outbox ORDER BY id');
    const byKey = new Map<string, string[]>();
    for (const r of all) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.id]);
    const claimedByKey = new Map<string, string[]>();
    for (const r of claimed) claimedByKey.set(r.key, [...(claimedByKey.get(r.key) ?? []), r.id]);
    expect(claimedByKey.size).toBe(40);
    for (const [key, ids] of claimedByKey) expect(ids).toEqual(byKey.get(key)?.slice(0, ids.length));
  });

  test('a batch smaller than the heads takes heads only (no follower is read)', async () => {
    await backlogOnEmptyStatistics(40, 5);
    const claimed = await inRolledBackTx((client) => claimOutboxBatch(client, 10));
    expect(new Set(claimed.map((r) => r.key)).size).toBe(10);
  });
});
