import type { Pool } from '@shared/db';

/**
 * Batched deletes of state that only matters for a while: one bounded statement at a time, so the
 * cleanup never holds long locks or bloats one transaction (an unbounded DELETE caused deadlocks
 * elsewhere: docs/field-notes.md). Each returns how many rows it removed.
 */
export async function deleteOldProcessedEvents(
  pool: Pool,
  opts: { olderThanS: number; limit: number },
): Promise<number> {
  const result = await pool.query(
    `DELETE FROM processed_events WHERE ctid IN (
       SELECT ctid FROM processed_events WHERE processed_at < now() - make_interval(secs => $1) LIMIT $2)`,
    [opts.olderThanS, opts.limit],
  );
  return result.rowCount ?? 0;
}

export async function deleteExpiredLoginThrottles(
  pool: Pool,
  opts: { windowS: number; limit: number },
): Promise<number> {
  const result = await pool.query(
    `DELETE FROM login_throttle WHERE address IN (
       SELECT address FROM login_throttle WHERE window_started_at < now() - make_interval(secs => $1) LIMIT $2)`,
    [opts.windowS, opts.limit],
  );
  const pairs = await pool.query(
    `DELETE FROM login_attempts WHERE ctid IN (
       SELECT ctid FROM login_attempts WHERE window_started_at < now() - make_interval(secs => $1) LIMIT $2)`,
    [opts.windowS, opts.limit],
  );
  // Registration windows are one hour long, always shorter than a login window's retention use here.
  const registrations = await pool.query(
    `DELETE FROM registration_limits WHERE client_ip IN (
       SELECT client_ip FROM registration_limits WHERE window_started_at < now() - interval '1 hour' LIMIT $1)`,
    [opts.limit],
  );
  return (result.rowCount ?? 0) + (pairs.rowCount ?? 0) + (registrations.rowCount ?? 0);
}
