import type { Queryable } from './queryable';

export type LoginLimits = { perClient: number; perAddress: number; windowS: number };

/**
 * Reserves one login attempt for (address, client IP) and for the address, in ONE statement, before
 * the password is verified. Each upsert increments only while its counter is below its limit (or its
 * window has expired, which restarts it at 1); ON CONFLICT locks the row and re-checks the newest
 * version, so of N concurrent attempts at most `limit` get a reservation. The address counter is
 * touched only when the pair reservation succeeded: attempts refused per client never spend the
 * owner's per-address budget. Returns whether the attempt may go on.
 */
export async function reserveLoginAttempt(
  db: Queryable,
  address: string,
  clientIp: string,
  now: Date,
  limits: LoginLimits,
): Promise<boolean> {
  const { rows } = await db.query<{ reserved: boolean }>(
    `WITH pair AS (
       INSERT INTO login_attempts AS t (address, client_ip, attempts, window_started_at) VALUES ($1, $2, 1, $3)
       ON CONFLICT (address, client_ip) DO UPDATE SET
         attempts = CASE WHEN t.window_started_at <= $3::timestamptz - make_interval(secs => $6)
                         THEN 1 ELSE t.attempts + 1 END,
         window_started_at = CASE WHEN t.window_started_at <= $3::timestamptz - make_interval(secs => $6)
                                  THEN $3 ELSE t.window_started_at END
       WHERE t.attempts < $4 OR t.window_started_at <= $3::timestamptz - make_interval(secs => $6)
       RETURNING 1
     ), addr AS (
       INSERT INTO login_throttle AS t (address, failures, window_started_at)
       SELECT $1, 1, $3 WHERE EXISTS (SELECT 1 FROM pair)
       ON CONFLICT (address) DO UPDATE SET
         failures = CASE WHEN t.window_started_at <= $3::timestamptz - make_interval(secs => $6)
                         THEN 1 ELSE t.failures + 1 END,
         window_started_at = CASE WHEN t.window_started_at <= $3::timestamptz - make_interval(secs => $6)
                                  THEN $3 ELSE t.window_started_at END
       WHERE t.failures < $5 OR t.window_started_at <= $3::timestamptz - make_interval(secs => $6)
       RETURNING 1
     )
     SELECT EXISTS (SELECT 1 FROM addr) AS reserved`,
    [address, clientIp, now, limits.perClient, limits.perAddress, limits.windowS],
  );
  return rows[0]?.reserved === true;
}

/** Seconds until the later of the pair's and the address's windows ends (for Retry-After). */
export async function loginRetryAfterS(
  db: Queryable,
  address: string,
  clientIp: string,
  now: Date,
  windowS: number,
): Promise<number> {
  const { rows } = await db.query<{ started: Date | null }>(
    `SELECT greatest(
       (SELECT window_started_at FROM login_attempts WHERE address = $1 AND client_ip = $2),
       (SELECT window_started_at FROM login_throttle WHERE address = $1)) AS started`,
    [address, clientIp],
  );
  const started = rows[0]?.started;
  const endsAt = (started ? started.getTime() : now.getTime()) + windowS * 1000;
  return Math.max(1, Math.ceil((endsAt - now.getTime()) / 1000));
}

/** A successful login clears the client's reservations and the address's. */
export async function clearLoginAttempts(db: Queryable, address: string, clientIp: string): Promise<void> {
  await db.query(
    `WITH pair AS (DELETE FROM login_attempts WHERE address = $1 AND client_ip = $2)
     DELETE FROM login_throttle WHERE address = $1`,
    [address, clientIp],
  );
}
