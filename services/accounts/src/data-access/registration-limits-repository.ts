import type { Queryable } from './queryable';

/**
 * In ONE statement: reserve a registration slot for `clientIp` (an upsert that increments only below
 * `maxPerHour`, or restarts an expired one-hour window at 1; ON CONFLICT re-checks the locked row, so
 * concurrent registrations cannot overshoot) and tell whether `email` is already registered — the
 * check registration made anyway, so the limit costs no extra round trip.
 */
export async function reserveRegistration(
  db: Queryable,
  opts: { clientIp: string; email: string; now: Date; maxPerHour: number },
): Promise<{ reserved: boolean; emailTaken: boolean }> {
  const { rows } = await db.query<{ reserved: boolean; taken: boolean }>({
    name: 'accounts-reserve-registration',
    text: `WITH slot AS (
       INSERT INTO registration_limits AS t (client_ip, registrations, window_started_at) VALUES ($1, 1, $2)
       ON CONFLICT (client_ip) DO UPDATE SET
         registrations = CASE WHEN t.window_started_at <= $2::timestamptz - interval '1 hour'
                              THEN 1 ELSE t.registrations + 1 END,
         window_started_at = CASE WHEN t.window_started_at <= $2::timestamptz - interval '1 hour'
                                  THEN $2 ELSE t.window_started_at END
       WHERE t.registrations < $3 OR t.window_started_at <= $2::timestamptz - interval '1 hour'
       RETURNING 1
     )
     SELECT EXISTS (SELECT 1 FROM slot) AS reserved,
            EXISTS (SELECT 1 FROM users WHERE lower(email) = lower($4)) AS taken`,
    values: [opts.clientIp, opts.now, opts.maxPerHour, opts.email],
  });
  return { reserved: rows[0]?.reserved === true, emailTaken: rows[0]?.taken === true };
}

/** Seconds until `clientIp`'s window ends (for Retry-After). */
export async function registrationRetryAfterS(db: Queryable, clientIp: string, now: Date): Promise<number> {
  const { rows } = await db.query<{ started: Date }>(
    `SELECT window_started_at AS started FROM registration_limits WHERE client_ip = $1`,
    [clientIp],
  );
  const started = rows[0]?.started ?? now;
  return Math.max(1, Math.ceil((started.getTime() + 3_600_000 - now.getTime()) / 1000));
}
