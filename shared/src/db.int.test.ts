import { createTestDatabase, type TestDatabase } from '../../test/support/infra';
import { createLogger } from './logger';
import { createPool, withTransaction, type Pool } from './db';

describe('withTransaction', () => {
  let db: TestDatabase;
  let pool: Pool;
  beforeAll(async () => {
    db = await createTestDatabase();
    // One connection: the next transaction gets the very client the last one released, if it was kept.
    pool = createPool({
      connectionString: db.url,
      logger: createLogger({ service: 'test', level: 'silent' }),
      applicationName: 'db-test',
      max: 1,
    });
    await db.pool.query('CREATE TABLE tx_probe (n int)');
  });
  afterAll(async () => {
    await pool.end();
    await db.drop();
  });

  test('when fn fails, then nothing it wrote stays and the error reaches the caller', async () => {
    const failing = withTransaction(pool, async (client) => {
      await client.query('INSERT INTO tx_probe VALUES (1)');
      throw new Error('use case failed');
    });
    await expect(failing).rejects.toThrow('use case failed');
    expect((await pool.query('SELECT count(*)::int AS n FROM tx_probe')).rows[0].n).toBe(0);
  });

  test(
    'when the connection dies inside the transaction, ' + 'then it is not reused: the next transaction works',
    async () => {
      const dying = withTransaction(pool, async (client) => {
        await client.query('SELECT pg_terminate_backend(pg_backend_pid())');
      });
      await expect(dying).rejects.toThrow();
      const n = await withTransaction(
        pool,
        async (client) => (await client.query('SELECT 1 AS n')).rows[0].n as number,
      );
      expect(n).toBe(1);
    },
  );
});
