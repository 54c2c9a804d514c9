import pg from 'pg';
import type { Logger } from './logger';

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

/** A pg pool whose idle-client errors are logged rather than crashing the process. */
export function createPool(opts: { connectionString: string; max?: number; logger: Logger; applicationName: string }): pg.Pool {
  const pool = new pg.Pool({
    connectionString: opts.connectionString,
    max: opts.max ?? 10,
    application_name: opts.applicationName,
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
  });
  pool.on('error', (err) => opts.logger.warn({ err: { message: err.message } }, 'idle PostgreSQL client failed'));
  return pool;
}

/** Runs `fn` in a transaction on one client; rolls back on any error and rethrows it. */
export async function withTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    client.release();
  }
}

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EPIPE', '57P01', '57P02', '57P03', '08000', '08001', '08003', '08004', '08006', '53300']);

/** True when the error means PostgreSQL cannot be reached or is shutting down (a 503, not a 500). */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code)) return true;
  const message = (err as { message?: unknown }).message;
  return typeof message === 'string' && /timeout exceeded when trying to connect|Connection terminated|connect ECONNREFUSED/i.test(message);
}

/** Readiness probe: PostgreSQL answers and the schema is migrated (the migrations table exists). */
export async function checkDatabaseReady(pool: pg.Pool): Promise<void> {
  const { rows } = await pool.query<{ migrated: boolean }>(`SELECT to_regclass('public.pgmigrations') IS NOT NULL AS migrated`);
  if (!rows[0]?.migrated) throw new Error('database is not migrated');
}
