import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../test/support/infra';
import { autovacuumWarning, findAutovacuumGaps } from './autovacuum';

describe('autovacuum check', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query('CREATE TABLE churn_off (id bigint PRIMARY KEY) WITH (autovacuum_enabled = false)');
    await db.pool.query('CREATE TABLE churn_on (id bigint PRIMARY KEY)');
  });
  afterAll(async () => {
    await db.drop();
  });

  test('reads the tables that turned autovacuum off (missing tables skipped)', async () => {
    expect((await findAutovacuumGaps(db.pool, ['churn_on', 'churn_off', 'no_such_table'])).tablesOff).toEqual([
      'churn_off',
    ]);
    expect((await findAutovacuumGaps(db.pool, ['churn_on'])).tablesOff).toEqual([]);
  });

  test('without statistics (track_counts off) autovacuum cannot run, whatever the autovacuum setting', async () => {
    // track_counts can be set per session (superuser): a server-wide "off" as this connection sees it.
    const noCounts = new pg.Pool({ connectionString: db.url, options: '-c track_counts=off', max: 1 });
    try {
      expect(await findAutovacuumGaps(noCounts, ['churn_on'])).toEqual({ serverOn: false, tablesOff: [] });
    } finally {
      await noCounts.end();
    }
  });

  test('warns only when autovacuum will not run for a table, naming the tables and the cause', () => {
    expect(autovacuumWarning(['a', 'b'], { serverOn: true, tablesOff: [] })).toBeUndefined();
    expect(autovacuumWarning(['a', 'b'], { serverOn: true, tablesOff: ['b'] })).toEqual({
      tables: ['b'],
      cause: 'autovacuum_enabled = false on the table',
    });
    expect(autovacuumWarning(['a', 'b'], { serverOn: false, tablesOff: [] })).toEqual({
      tables: ['a', 'b'],
      cause: 'autovacuum or track_counts is off on the server',
    });
  });
});
