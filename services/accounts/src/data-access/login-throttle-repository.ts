import type { Queryable } from './queryable';

export type LoginThrottle = { failures: number; windowStartedAt: Date };

export async function readLoginThrottle(db: Queryable, address: string): Promise<LoginThrottle | null> {
  const { rows } = await db.query<{ failures: number; window_started_at: Date }>(
    `SELECT failures, window_started_at FROM login_throttle WHERE address = $1`,
    [address],
  );
  const row = rows[0];
  return row ? { failures: row.failures, windowStartedAt: row.window_started_at } : null;
}

/**
 * Counts one failure atomically (one statement, so concurrent failures on several instances all
 * count); a window older than `windowS` restarts at 1.
 */
export async function recordLoginFailure(db: Queryable, address: string, now: Date, windowS: number): Promise<LoginThrottle> {
  const { rows } = await db.query<{ failures: number; window_started_at: Date }>(
    `INSERT INTO login_throttle AS t (address, failures, window_started_at) VALUES ($1, 1, $2)
     ON CONFLICT (address) DO UPDATE SET
       failures = CASE WHEN t.window_started_at <= $2::timestamptz - make_interval(secs => $3) THEN 1 ELSE t.failures + 1 END,
       window_started_at = CASE WHEN t.window_started_at <= $2::timestamptz - make_interval(secs => $3) THEN $2 ELSE t.window_started_at END
     RETURNING failures, window_started_at`,
    [address, now, windowS],
  );
  const row = rows[0] as { failures: number; window_started_at: Date };
  return { failures: row.failures, windowStartedAt: row.window_started_at };
}

export async function clearLoginFailures(db: Queryable, address: string): Promise<void> {
  await db.query(`DELETE FROM login_throttle WHERE address = $1`, [address]);
}
