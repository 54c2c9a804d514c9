import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../test/support/infra';
import { createLogger } from './logger';
import { bigintArrayLiteral, createPool, withTransaction, type Pool } from './db';

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
    await db.pool.query('CREATE TABLE tx_finish (id bigint PRIMARY KEY)');
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

  test('when fn hands a statement to finishWith, then it runs in the transaction, with the commit', async () => {
    await pool.query('INSERT INTO tx_finish VALUES (1), (2), (3)');
    await withTransaction(pool, async (client, tx) => {
      await client.query('INSERT INTO tx_probe VALUES (7)');
      tx.finishWith(`DELETE FROM tx_finish WHERE id = ANY(${bigintArrayLiteral(['1', '3'])})`);
    });
    expect((await pool.query('SELECT id FROM tx_finish ORDER BY id')).rows).toEqual([{ id: '2' }]);
    expect((await pool.query('SELECT count(*)::int AS n FROM tx_probe WHERE n = 7')).rows[0].n).toBe(1);
    await pool.query('DELETE FROM tx_probe; DELETE FROM tx_finish');
  });

  test('asynchronousCommit: commits with synchronous_commit off; the next commit on the connection waits', async () => {
    // A deferred trigger runs at COMMIT and notes the setting in effect there, the one that decides.
    await pool.query(`CREATE TABLE tx_commit_mode (id bigint, setting text);
      CREATE FUNCTION note_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN INSERT INTO tx_commit_mode VALUES (NEW.id, current_setting('synchronous_commit')); RETURN NULL; END $$;
      CREATE CONSTRAINT TRIGGER note_commit_mode AFTER INSERT ON tx_finish DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION note_commit_mode()`);
    try {
      const insert = (id: number) => async (client: pg.PoolClient, tx: { finishWith: (sql: string) => void }) => {
        await client.query('INSERT INTO tx_finish VALUES ($1)', [id]);
        if (id === 10) tx.finishWith('DELETE FROM tx_probe WHERE n = -1');
      };
      await withTransaction(pool, insert(10), { asynchronousCommit: true });
      await withTransaction(pool, insert(11), { asynchronousCommit: true });
      await withTransaction(pool, insert(12));
      const { rows } = await pool.query('SELECT id, setting FROM tx_commit_mode ORDER BY id');
      expect(rows).toEqual([
        { id: '10', setting: 'off' },
        { id: '11', setting: 'off' },
        { id: '12', setting: 'on' },
      ]);
      expect((await pool.query('SHOW synchronous_commit')).rows[0].synchronous_commit).toBe('on');
    } finally {
      await pool.query(`DROP TRIGGER note_commit_mode ON tx_finish; DROP FUNCTION note_commit_mode();
        DROP TABLE tx_commit_mode; DELETE FROM tx_finish`);
    }
  });

  test('when the last statement ends in a comment, then the COMMIT still runs (on a line of its own)', async () => {
    await pool.query('INSERT INTO tx_finish VALUES (5)');
    await withTransaction(pool, async (_client, tx) => tx.finishWith('DELETE FROM tx_finish WHERE id = 5 -- done'));
    expect((await pool.query('SELECT count(*)::int AS n FROM tx_finish')).rows[0].n).toBe(0);
    const unterminated = withTransaction(pool, async (_client, tx) => tx.finishWith('SELECT 1 /* never closed'));
    await expect(unterminated).rejects.toThrow();
    expect(await withTransaction(pool, async (client) => (await client.query('SELECT 3 AS n')).rows[0].n)).toBe(3);
  });

  test('when the last statement fails, then nothing commits and the client stays usable', async () => {
    const failing = withTransaction(pool, async (client, tx) => {
      await client.query('INSERT INTO tx_probe VALUES (8)');
      tx.finishWith('DELETE FROM no_such_table');
    });
    await expect(failing).rejects.toThrow(/no_such_table/);
    expect((await pool.query('SELECT count(*)::int AS n FROM tx_probe')).rows[0].n).toBe(0);
    expect(await withTransaction(pool, async (client) => (await client.query('SELECT 2 AS n')).rows[0].n)).toBe(2);
  });

  test('bigintArrayLiteral takes integers only: anything else is refused, not quoted', () => {
    expect(bigintArrayLiteral(['1', '-2', '9223372036854775807'])).toBe("'{1,-2,9223372036854775807}'::bigint[]");
    expect(bigintArrayLiteral([])).toBe("'{}'::bigint[]");
    expect(() => bigintArrayLiteral(['1', "1}'::bigint[]; DROP TABLE x; --"])).toThrow('not a bigint');
    expect(() => bigintArrayLiteral(['1.5'])).toThrow('not a bigint');
  });

  describe('beginWith: the first statement goes with the BEGIN', () => {
    const first = (limit: number) => ({
      name: 'tx-probe-first',
      text: 'SELECT n FROM generate_series(1, $1::int) AS n ORDER BY n',
      values: [limit],
    });
    const queriesOf = async (run: () => Promise<unknown>): Promise<string[]> => {
      const spy = jest.spyOn(pg.Client.prototype, 'query');
      try {
        await run();
        return spy.mock.calls.map(([q]) => (typeof q === 'string' ? q : (q as { text: string }).text));
      } finally {
        spy.mockRestore();
      }
    };

    test('first on a connection the usual way (which prepares it), then with the BEGIN in one round trip', async () => {
      const rowsSeen: unknown[] = [];
      const txn = () =>
        withTransaction<void, { n: number }>(pool, async (_client, tx) => void rowsSeen.push(tx.first), {
          beginWith: first(3),
        });
      const firstTime = await queriesOf(txn);
      expect(firstTime).toEqual(['BEGIN', first(3).text, 'COMMIT']);
      const later = await queriesOf(txn);
      expect(later).toEqual(['BEGIN;\nEXECUTE "tx-probe-first"(3)', 'COMMIT']);
      expect(rowsSeen).toEqual([
        [{ n: 1 }, { n: 2 }, { n: 3 }],
        [{ n: 1 }, { n: 2 }, { n: 3 }],
      ]);
    });

    test('a new connection prepares it again (the connection before it died)', async () => {
      await expect(
        withTransaction(
          pool,
          async (client) => void (await client.query('SELECT pg_terminate_backend(pg_backend_pid())')),
        ),
      ).rejects.toThrow();
      const queries = await queriesOf(() => withTransaction(pool, async () => undefined, { beginWith: first(1) }));
      expect(queries).toEqual(['BEGIN', first(1).text, 'COMMIT']);
    });

    test('a preamble runs between BEGIN and it, in the same round trip; its rows come as tx.preamble', async () => {
      const withLock = {
        ...first(2),
        name: 'tx-probe-after-lock',
        preamble: 'SELECT pg_try_advisory_xact_lock(42) AS locked',
      };
      const seen: unknown[] = [];
      const txn = () =>
        withTransaction(pool, async (_client, tx) => void seen.push([tx.preamble, tx.first]), { beginWith: withLock });
      expect(await queriesOf(txn)).toEqual([`BEGIN;\n${withLock.preamble}`, withLock.text, 'COMMIT']);
      expect(await queriesOf(txn)).toEqual([
        `BEGIN;\n${withLock.preamble};\nEXECUTE "tx-probe-after-lock"(2)`,
        'COMMIT',
      ]);
      const both = [[{ locked: true }], [{ n: 1 }, { n: 2 }]];
      expect(seen).toEqual([both, both]);
    });

    test('when the server lost the prepared statement, then it is prepared again and the work runs', async () => {
      await withTransaction(pool, async () => undefined, { beginWith: first(1) });
      await pool.query('DEALLOCATE ALL');
      let rows: unknown[] = [];
      const queries = await queriesOf(() =>
        withTransaction(pool, async (_client, tx) => void (rows = tx.first), { beginWith: first(2) }),
      );
      expect(queries).toEqual(['BEGIN;\nEXECUTE "tx-probe-first"(2)', 'ROLLBACK', 'BEGIN', first(2).text, 'COMMIT']);
      expect(rows).toEqual([{ n: 1 }, { n: 2 }]);
    });

    test('when the statement fails once prepared, then it rolls back and the client stays usable', async () => {
      const divide = (by: number) => ({ name: 'tx-probe-divide', text: 'SELECT 10 / $1::int AS q', values: [by] });
      await withTransaction(pool, async () => undefined, { beginWith: divide(5) });
      const failing = withTransaction(
        pool,
        async (client) => void (await client.query('INSERT INTO tx_probe VALUES (9)')),
        {
          beginWith: divide(0),
        },
      );
      await expect(failing).rejects.toThrow(/division by zero/);
      expect((await pool.query('SELECT count(*)::int AS n FROM tx_probe')).rows[0].n).toBe(0);
      let q: unknown;
      await withTransaction(pool, async (_c, tx) => void (q = tx.first), { beginWith: divide(2) });
      expect(q).toEqual([{ q: 5 }]);
    });

    test('strings and arrays of ids are written as literals; a value that cannot be goes the usual way', async () => {
      const echo = (text: string, ids: string[]) => ({
        name: 'tx-probe-echo',
        text: 'SELECT $1::text AS t, $2::text[] AS ids',
        values: [text, ids],
      });
      const run = async (e: ReturnType<typeof echo>) => {
        let rows: unknown[] = [];
        const q = await queriesOf(() =>
          withTransaction(pool, async (_c, tx) => void (rows = tx.first), { beginWith: e }),
        );
        return { q, rows };
      };
      await run(echo('prepare', []));
      const quoted = "'); DROP TABLE tx_probe; --";
      expect(await run(echo(quoted, ['a-1', 'b_2']))).toEqual({
        q: [`BEGIN;\nEXECUTE "tx-probe-echo"('''); DROP TABLE tx_probe; --', '{a-1,b_2}')`, 'COMMIT'],
        rows: [{ t: quoted, ids: ['a-1', 'b_2'] }],
      });
      // A backslash, an element an array literal would split, quote or read as NULL: parameters instead.
      const unsafe: [string, string[]][] = [
        ['back\\slash', []],
        ['x', ['a,b']],
        ['x', ['"q"']],
        ['x', ['NULL']],
      ];
      for (const [t, ids] of unsafe) {
        expect(await run(echo(t, ids))).toEqual({ q: ['BEGIN', echo(t, ids).text, 'COMMIT'], rows: [{ t, ids }] });
      }
      expect((await pool.query('SELECT count(*)::int AS n FROM tx_probe')).rows[0].n).toBe(0);
    });
  });
});
