import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { startTestAccounts, strongPassword, uniqueEmail, type TestAccounts } from './support/accounts-app';

/*
 * The relay's claim query assumes that rows of one key (the user id) are written by serialized writers,
 * so that per key, outbox id order is commit order (services/relay/src/data-access/outbox-repository.ts).
 * The accounts writers hold the user's row lock before inserting outbox rows. This test holds that lock
 * in a transaction of its own, inserts a row for the key there, and lets a resend run meanwhile: the
 * resend must wait for the lock and get a higher id. A writer that inserted first (or never locked)
 * would finish while the lock is held, or take a lower id: both fail here.
 */
describe('accounts: outbox writers of one user are serialized by the user row lock', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;
  beforeAll(async () => {
    db = await createTestDatabase();
    accounts = startTestAccounts({ databaseUrl: db.url, env: { RESEND_COOLDOWN_S: '0', RESEND_MAX_PER_HOUR: '100' } });
  });
  afterAll(async () => {
    await accounts.close();
    await db.drop();
  });

  test(
    'when another transaction holds the user row lock, then a resend waits for it and its outbox row gets a ' +
      'higher id',
    async () => {
      const reg = await accounts.http
        .post('/api/v1/usr/register')
        .send({ email: uniqueEmail('order'), password: strongPassword });
      expect(reg.status).toBe(201);
      const userId: string = reg.body.user_data.id;
      const holder = await db.pool.connect();
      let resendDone = false;
      try {
        await holder.query('BEGIN');
        // FOR NO KEY UPDATE: conflicts with the writers' FOR UPDATE, not with the FOR KEY SHARE of foreign-key checks.
        await holder.query('SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE', [userId]);
        const resend = accounts.http
          .post('/api/v1/usr/email/resend')
          .set('Authorization', `Bearer ${reg.body.access_token}`)
          .then((r) => {
            resendDone = true;
            return r;
          });
        // The resend's backend is blocked on a row lock (not finished, not merely slow).
        await waitFor(
          async () => {
            if (resendDone) throw new Error('the resend finished while the user row lock was held');
            const { rows } = await db.pool.query<{ n: number }>(
              `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`,
              [(await holder.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid],
            );
            return (rows[0]?.n ?? 0) > 0;
          },
          { message: 'the resend waits for the user row lock' },
        );
        const { rows: mine } = await holder.query<{ id: string }>(
          `INSERT INTO outbox (event_id, topic, key, type, aggregate_type, occurred_at, payload)
         VALUES (gen_random_uuid(), 'accounts.user-events', $1, 'user.test', 'user', now(), '{}') RETURNING id`,
          [userId],
        );
        await holder.query('COMMIT');
        expect((await resend).status).toBe(202);
        const { rows } = await db.pool.query<{ id: string; type: string }>(
          'SELECT id, type FROM outbox WHERE key = $1 ORDER BY id',
          [userId],
        );
        const resendRow = rows.filter((r) => r.type === 'mail.requested').at(-1);
        expect(BigInt(resendRow?.id ?? '0')).toBeGreaterThan(BigInt(mine[0]?.id ?? '0'));
      } finally {
        await holder.query('ROLLBACK').catch(() => undefined);
        holder.release();
      }
    },
  );
});
