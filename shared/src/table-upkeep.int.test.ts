import { Writable } from 'node:stream';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../test/support/infra';
import { waitFor } from '../../test/support/wait-for';
import { createLogger } from './logger';
import { tableUpkeep, upkeepDue } from './table-upkeep';

describe('table upkeep: what autovacuum would do, when it will not', () => {
  let db: TestDatabase;
  const lines: string[] = [];
  const logger = createLogger({
    service: 'test',
    level: 'info',
    destination: new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(chunk.toString()), done()) }),
  });
  /** The table's statistics as the server has them now (not this session's cached snapshot). */
  const stats = async (table: string) => {
    const client = await db.pool.connect();
    try {
      await client.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await client.query<{ dead: number; vacuums: number; analyzes: number; reltuples: number }>(
        `SELECT s.n_dead_tup::int AS dead, s.vacuum_count::int AS vacuums, s.analyze_count::int AS analyzes,
                c.reltuples::int AS reltuples
           FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid WHERE s.relname = $1`,
        [table],
      );
      return rows[0] ?? { dead: 0, vacuums: 0, analyzes: 0, reltuples: 0 };
    } finally {
      client.release();
    }
  };

  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query('CREATE TABLE churn_off (id bigint PRIMARY KEY, v text) WITH (autovacuum_enabled = false)');
  });
  afterAll(async () => {
    await db.drop();
  });

  test('due by autovacuum rule, with queue-sized thresholds; every round without counts', () => {
    expect(upkeepDue({ live: 0, dead: 1_000, modifiedSinceAnalyze: 5_000 })).toBe('analyze');
    expect(upkeepDue({ live: 0, dead: 1_001, modifiedSinceAnalyze: 0 })).toBe('vacuum');
    expect(upkeepDue({ live: 100_000, dead: 10_000, modifiedSinceAnalyze: 10_000 })).toBeNull();
    expect(upkeepDue({ live: 100_000, dead: 11_001, modifiedSinceAnalyze: 0 })).toBe('vacuum');
    expect(upkeepDue({ live: 10, dead: 0, modifiedSinceAnalyze: 10 })).toBeNull();
    expect(upkeepDue(undefined)).toBe('vacuum');
    // Capped for a table that keeps many finished rows: 50,000 dead rows, not 10 % of three million.
    expect(upkeepDue({ live: 3_000_000, dead: 50_001, modifiedSinceAnalyze: 0 })).toBe('vacuum');
    expect(upkeepDue({ live: 3_000_000, dead: 0, modifiedSinceAnalyze: 50_001 })).toBe('analyze');
  });

  test('warns once at start, then reclaims the dead rows of a table autovacuum leaves alone', async () => {
    await db.pool.query(`INSERT INTO churn_off SELECT g, 'x' FROM generate_series(1, 3000) g`);
    await db.pool.query('DELETE FROM churn_off');
    await waitFor(async () => (await stats('churn_off')).dead >= 3_000, { message: 'the dead rows counted' });
    const upkeep = tableUpkeep({ pool: db.pool, logger, tables: ['churn_off', 'no_such_table'], intervalMs: 100 });
    await upkeep.start?.();
    try {
      await waitFor(async () => (await stats('churn_off')).vacuums > 0, { message: 'a VACUUM of churn_off' });
      expect((await stats('churn_off')).dead).toBe(0);
      const warnings = lines.map((l) => JSON.parse(l) as { level: string; msg: string; tables: string[] });
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ level: 'warn', tables: ['churn_off', 'no_such_table'] });
      expect(warnings[0]?.msg).toMatch(/autovacuum will not reclaim these tables/);
    } finally {
      await upkeep.stop();
    }
  });

  test('a check that fails at start (database down) is tried again until it succeeds', async () => {
    lines.length = 0;
    await db.pool.query(`INSERT INTO churn_off SELECT g, 'x' FROM generate_series(1, 3000) g`);
    await db.pool.query('DELETE FROM churn_off');
    await waitFor(async () => (await stats('churn_off')).dead >= 3_000, { message: 'the dead rows counted' });
    const before = (await stats('churn_off')).vacuums;
    let calls = 0;
    const downAtFirst = new Proxy(db.pool, {
      get(target, prop, receiver) {
        if (prop !== 'query' || calls++ > 0) return Reflect.get(target, prop, receiver) as unknown;
        return () => Promise.reject(new Error('connect ECONNREFUSED'));
      },
    });
    const upkeep = tableUpkeep({ pool: downAtFirst, logger, tables: ['churn_off'], intervalMs: 100 });
    await upkeep.start?.();
    try {
      await waitFor(async () => (await stats('churn_off')).vacuums > before, { message: 'a VACUUM after the retry' });
      const messages = lines.map((l) => (JSON.parse(l) as { level: string; msg: string }).msg);
      expect(messages[0]).toBe('could not check autovacuum');
      expect(messages[1]).toMatch(/autovacuum will not reclaim these tables/);
    } finally {
      await upkeep.stop();
    }
  });

  test('ANALYZEs a table whose rows changed since its statistics, and leaves a quiet one alone', async () => {
    const upkeep = tableUpkeep({ pool: db.pool, logger, tables: ['churn_off'] });
    await db.pool.query(`INSERT INTO churn_off SELECT g, 'x' FROM generate_series(1, 2000) g`);
    await waitFor(async () => (await upkeep.runOnce()).churn_off === 'analyze', {
      message: 'an ANALYZE of churn_off',
    });
    expect((await stats('churn_off')).reltuples).toBe(2000);
    await waitFor(async () => (await stats('churn_off')).analyzes > 1, { message: 'the ANALYZE counted' });
    expect(await upkeep.runOnce()).toEqual({});
  });

  test('a table another session holds locked is skipped (SKIP_LOCKED), not reported done, and done later', async () => {
    const upkeep = tableUpkeep({ pool: db.pool, logger, tables: ['churn_off'] });
    await db.pool.query('DELETE FROM churn_off');
    await db.pool.query(`INSERT INTO churn_off SELECT g, 'x' FROM generate_series(1, 3000) g`);
    await db.pool.query('DELETE FROM churn_off');
    await waitFor(async () => (await stats('churn_off')).dead >= 3_000, { message: 'the dead rows counted' });
    const holder = await db.pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('LOCK TABLE churn_off IN ACCESS EXCLUSIVE MODE');
      expect(await upkeep.runOnce()).toEqual({});
      expect((await stats('churn_off')).dead).toBeGreaterThanOrEqual(3_000);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    expect(await upkeep.runOnce()).toEqual({ churn_off: 'vacuum' });
    expect((await stats('churn_off')).dead).toBe(0);
  });

  test("the database's owner may VACUUM a table it does not own, and does", async () => {
    const role = `upkeep_dbowner_${db.name.slice(-8)}`;
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    try {
      await admin.query(`CREATE ROLE ${role} LOGIN`);
      await admin.query(`ALTER DATABASE ${db.name} OWNER TO ${role}`);
      await admin.query(`GRANT SELECT ON churn_off TO ${role}`);
      await db.pool.query('DELETE FROM churn_off');
      await db.pool.query(`INSERT INTO churn_off SELECT g, 'x' FROM generate_series(1, 3000) g`);
      await db.pool.query('DELETE FROM churn_off');
      await waitFor(async () => (await stats('churn_off')).dead >= 3_000, { message: 'the dead rows counted' });
      const url = new URL(db.url);
      url.username = role;
      const asOwner = new pg.Pool({ connectionString: url.toString(), max: 2 });
      try {
        lines.length = 0;
        const upkeep = tableUpkeep({ pool: asOwner, logger, tables: ['churn_off'] });
        expect(await upkeep.runOnce()).toEqual({ churn_off: 'vacuum' });
        expect((await stats('churn_off')).dead).toBe(0);
        expect(lines.join('')).not.toMatch(/does not own/);
      } finally {
        await asOwner.end();
      }
    } finally {
      await admin.query('ALTER DATABASE ' + db.name + ' OWNER TO CURRENT_USER').catch(() => undefined);
      await admin.query(`REVOKE ALL ON churn_off FROM ${role}`).catch(() => undefined);
      await admin.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
      await admin.end();
    }
  });

  test('without track_counts there are no counts to go by: every round VACUUMs', async () => {
    const noCounts = new pg.Pool({ connectionString: db.url, options: '-c track_counts=off', max: 1 });
    try {
      const upkeep = tableUpkeep({ pool: noCounts, logger, tables: ['churn_off'] });
      expect(await upkeep.runOnce()).toEqual({ churn_off: 'vacuum' });
      expect(await upkeep.runOnce()).toEqual({ churn_off: 'vacuum' });
    } finally {
      await noCounts.end();
    }
  });
});
