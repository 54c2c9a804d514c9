import pg from 'pg';
import { executeArgLiteral, type SqlArg } from './sql-literals';
import type { Logger } from './logger';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/**
 * A pg pool whose idle-client errors are logged rather than crashing the process, and whose every
 * wait is bounded, so a dead or hung PostgreSQL turns into an error (a 503) instead of a hang:
 *  - connecting (and waiting for a free client) gives up after `connectTimeoutMs` (DB_CONNECT_TIMEOUT_MS, 5 s);
 *  - the server cancels a statement after `statementTimeoutMs` (DB_STATEMENT_TIMEOUT_MS, 10 s) and
 *    a lock wait after the same;
 *  - the client gives up on an answer 5 s after that (a server that stopped answering cannot cancel);
 *  - the server ends a session idle inside a transaction for 60 s (a frozen client holds no locks for ever);
 *  - TCP keep-alive notices a vanished server on an idle connection.
 */
export function createPool(opts: {
  connectionString: string;
  max?: number;
  logger: Logger;
  applicationName: string;
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
}): pg.Pool {
  const statementTimeoutMs = opts.statementTimeoutMs ?? 10_000;
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max ?? 10,
    application_name: opts.applicationName,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5_000,
    idleTimeoutMillis: 30_000,
    statement_timeout: statementTimeoutMs,
    lock_timeout: statementTimeoutMs,
    query_timeout: statementTimeoutMs + 5_000,
    idle_in_transaction_session_timeout: 60_000,
    keepAlive: true,
  });
  pool.on('error', (err) => opts.logger.warn({ err: { message: err.message } }, 'idle PostgreSQL client failed'));
  // A checked-out client has no listener of the pool's: if the server dies while the client sits between
  // two queries (inside a transaction), its 'error' would be unhandled and end the process. The query
  // that uses it next fails instead (and its caller answers 503 or retries).
  pool.on('connect', (client) => {
    client.on('error', (err) => opts.logger.warn({ err: { message: err.message } }, 'PostgreSQL connection lost'));
  });
  return pool;
}

/**
 * A transaction's first statement, sent together with the BEGIN in ONE round trip: a named statement.
 * The first time a connection runs it, it goes the usual way (BEGIN, then the statement, which prepares
 * it on that connection); after that as `BEGIN; EXECUTE name(…)` of the statement prepared there (simple
 * query protocol: its values written into the text as literals, sql-literals.ts; a value that cannot be
 * goes the usual way).
 * Needs a session of its own per connection (a direct connection, or a pooler in session mode), as
 * node-postgres' named statements do; if the server lost the statement, it is prepared again.
 */
export type FirstStatement = {
  name: string;
  text: string;
  /** Integers, strings, arrays of plain tokens (ids): see sql-literals.ts; any other value goes the usual way. */
  values: readonly SqlArg[];
  /**
   * A statement without parameters run after BEGIN and before this one, in the same round trip (e.g.
   * taking an advisory lock). In READ COMMITTED each statement takes its own snapshot, so the named
   * statement sees everything committed before the preamble finished. Its rows: `tx.preamble`.
   */
  preamble?: string;
};

/** What `withTransaction` hands its callback besides the client. */
export type Transaction<R extends pg.QueryResultRow = pg.QueryResultRow> = {
  /** The rows of `beginWith` (none without it). */
  first: R[];
  /** The rows of `beginWith`'s preamble (none without it). */
  preamble: pg.QueryResultRow[];
  /**
   * One last statement, sent together with the COMMIT in ONE round trip instead of two (simple query
   * protocol: the statement takes no parameters, so only SQL whose literals the caller made safe, e.g.
   * with `bigintArrayLiteral`). It runs after the callback resolved; if it fails, nothing commits.
   */
  finishWith: (sql: string) => void;
};

type Begun<R> = { first: R[]; preamble: pg.QueryResultRow[] };
type Results = pg.QueryResult | pg.QueryResult[];
const rowsAt = (results: Results, i: number): pg.QueryResultRow[] =>
  (Array.isArray(results) ? results[i]?.rows : undefined) ?? [];

/**
 * node-postgres' own record of the named statements this connection has prepared (set when the server
 * answers ParseComplete): `beginWith` EXECUTEs a statement only if it is there with the same text.
 * Without it (another node-postgres), every transaction simply goes the usual way.
 */
const parsedOn = (client: pg.PoolClient): Record<string, string> | undefined =>
  (client as unknown as { connection?: { parsedStatements?: Record<string, string> } }).connection?.parsedStatements;

async function begin<R extends pg.QueryResultRow>(client: pg.PoolClient, first?: FirstStatement): Promise<Begun<R>> {
  if (!first) {
    await client.query('BEGIN');
    return { first: [], preamble: [] };
  }
  const opening = first.preamble === undefined ? 'BEGIN' : `BEGIN;\n${first.preamble}`;
  const parsed = parsedOn(client);
  const literals = first.values.map(executeArgLiteral);
  if (parsed?.[first.name] !== first.text || literals.includes(undefined)) {
    const opened = (await client.query(opening)) as Results;
    const { rows } = await client.query<R>({ ...first, values: [...first.values] });
    return { first: rows, preamble: rowsAt(opened, 1) };
  }
  const args = literals.length > 0 ? `(${literals.join(', ')})` : '';
  try {
    const results = (await client.query(
      `${opening};\nEXECUTE "${first.name.replaceAll('"', '""')}"${args}`,
    )) as unknown as pg.QueryResult[];
    return {
      first: rowsAt(results, results.length - 1) as R[],
      preamble: first.preamble === undefined ? [] : rowsAt(results, 1),
    };
  } catch (err) {
    // 26000: the server no longer has it (DISCARD ALL, DEALLOCATE): end the aborted transaction, forget
    // it, and prepare it again the usual way.
    if ((err as { code?: string }).code !== '26000') throw err;
    await client.query('ROLLBACK');
    delete parsed[first.name];
    return begin<R>(client, first);
  }
}

export type TransactionOptions = {
  /** The first statement, sent with the BEGIN (see FirstStatement). */
  beginWith?: FirstStatement;
  /**
   * Commit without waiting for PostgreSQL to flush the commit to disk (`SET LOCAL synchronous_commit TO
   * off`, this transaction only): the commit returns sooner and the server's backend is spared the wait
   * for its WAL flush, about two wake-ups. A crash of PostgreSQL (or of its machine) shortly after — up
   * to three times `wal_writer_delay`, 600 ms by default — may undo the transaction, and everything
   * committed after it, as if it had never committed; it never undoes a transaction and keeps a later
   * one (WAL is replayed in commit order), and a later commit that waits for its flush makes this one
   * durable too. Only for a transaction whose undoing does no harm: deleting rows after the broker
   * acknowledged them (they are published again: duplicates, which consumers drop by id).
   */
  asynchronousCommit?: boolean;
};

/**
 * Runs `fn` in a transaction on one client; rolls back on any error and rethrows it. The only place
 * in the services that says BEGIN/COMMIT. `beginWith`: the first statement goes with the BEGIN.
 */
export async function withTransaction<T, R extends pg.QueryResultRow = pg.QueryResultRow>(
  pool: pg.Pool,
  fn: (client: pg.PoolClient, tx: Transaction<R>) => Promise<T>,
  opts: TransactionOptions = {},
): Promise<T> {
  const client = await pool.connect();
  // Set when the connection is gone or unusable: release(err) destroys it instead of pooling it.
  let broken: Error | undefined;
  // A checked-out client has no pool listener: a connection dying between two queries would emit an
  // unhandled 'error' and take the process down. Here it only marks the client broken.
  const onError = (err: Error) => {
    broken = err;
  };
  client.on('error', onError);
  let finish: string | undefined;
  try {
    const begun = await begin<R>(client, opts.beginWith);
    const result = await fn(client, { ...begun, finishWith: (sql) => void (finish = sql) });
    // SET LOCAL: the setting ends with this transaction, never reaching the connection's next user.
    const commit = opts.asynchronousCommit === true ? 'SET LOCAL synchronous_commit TO off;\nCOMMIT' : 'COMMIT';
    if (finish === undefined) {
      await client.query(commit);
      return result;
    }
    // A failing statement of a multi-statement query skips the rest: the COMMIT never runs, and the
    // ROLLBACK below ends the aborted transaction. The COMMIT on a line of its own (a trailing `--`
    // comment cannot swallow it), and checked: a transaction must never go back to the pool open.
    const done = (await client.query(`${finish}\n;${commit}`)) as Results;
    const last = Array.isArray(done) ? done[done.length - 1] : done;
    if (last?.command !== 'COMMIT') throw new Error('finishWith: the COMMIT did not run');
    return result;
  } catch (err) {
    // A ROLLBACK that fails means the connection is gone or unusable: never hand it to the next caller.
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    });
    throw err;
  } finally {
    client.removeListener('error', onError);
    client.release(broken);
  }
}

export { bigintArrayLiteral } from './sql-literals';

// 57014 query_canceled (statement_timeout), 55P03 lock_not_available (lock_timeout): the database is
// too slow to answer in time, which the client sees as unavailable, not as a fault of its request.
const CONNECTION_ERROR_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EPIPE',
  '57P01',
  '57P02',
  '57P03',
  '08000',
  '08001',
  '08003',
  '08004',
  '08006',
  '53300',
  '57014',
  '55P03',
]);
const UNAVAILABLE_MESSAGES = new RegExp(
  [
    'timeout exceeded when trying to connect',
    'Connection terminated',
    'connect ECONNREFUSED',
    'Query read timeout',
    'not queryable',
    'unexpected postmaster exit',
    'the database system is (starting up|shutting down|in recovery mode)',
  ].join('|'),
  'i',
);

/**
 * True when the error means PostgreSQL cannot be reached, is shutting down or does not answer in time
 * (a 503, not a 500).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code)) return true;
  const message = (err as { message?: unknown }).message;
  return typeof message === 'string' && UNAVAILABLE_MESSAGES.test(message);
}

/**
 * Readiness probe: PostgreSQL answers and the service's schema is migrated (its node-pg-migrate
 * history table exists: `pgmigrations` for accounts, whose data the relay also reads;
 * `mailer_pgmigrations` for the mailer).
 */
export async function checkDatabaseReady(pool: pg.Pool, migrationsTable = 'pgmigrations'): Promise<void> {
  const { rows } = await pool.query<{ migrated: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS migrated`, [
    `public.${migrationsTable}`,
  ]);
  if (!rows[0]?.migrated) throw new Error('database is not migrated');
}
