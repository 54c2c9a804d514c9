import {
  anonymousResendSettled,
  codeOf,
  createTestClock,
  metricValue,
  strongPassword,
  uniqueEmail,
  withTestAccounts,
} from './support/accounts-app';

describe('email confirmation: confirm, resend and status', () => {
  const clock = createTestClock();
  const env = {
    RESEND_COOLDOWN_S: '60',
    RESEND_MAX_PER_HOUR: '3',
    CONFIRMATION_MAX_ATTEMPTS: '3',
    CONFIRMATION_CODE_TTL_S: '300',
  };
  const { db, accounts } = withTestAccounts({ env, clock });

  type Registered = { token: string; userId: string; requestId: string; email: string };
  const registerUser = async (): Promise<Registered> => {
    const email = uniqueEmail('confirm');
    const res = await accounts.http.post('/api/v1/usr/register').send({ email, password: strongPassword });
    expect(res.status).toBe(201);
    return {
      token: res.body.access_token,
      userId: res.body.user_data.id,
      requestId: res.body.email_confirmation.request_id,
      email,
    };
  };
  const confirm = (u: Registered, code: string) =>
    accounts.http.post('/api/v1/usr/email/confirm').set('Authorization', `Bearer ${u.token}`).send({ code });
  const resend = (u: Registered) =>
    accounts.http.post('/api/v1/usr/email/resend').set('Authorization', `Bearer ${u.token}`);
  const anonymousResend = (email: string) => anonymousResendSettled(accounts, { email });
  const status = (u: Registered) =>
    accounts.http.get('/api/v1/usr/email/status').set('Authorization', `Bearer ${u.token}`);
  const wrong = (code: string) => String((Number(code) + 1) % 1_000_000).padStart(6, '0');
  const pendingCount = async (userId: string) =>
    (
      await db.pool.query(
        `SELECT count(*)::int AS n FROM email_confirmations WHERE user_id = $1 AND state = 'pending'`,
        [userId],
      )
    ).rows[0].n as number;

  describe('POST /api/v1/usr/email/confirm', () => {
    test(
      'when the code is right, returns 200 email_confirmed and marks the user confirmed and the request ' + 'consumed',
      async () => {
        const user = await registerUser();

        const res = await confirm(user, await codeOf(db.pool, user.requestId));

        expect(res.status).toBe(200);
        expect(res.body).toEqual({ email_confirmed: true });
        const row = await db.pool.query(
          'SELECT u.email_confirmed_at IS NOT NULL AS confirmed, ec.state FROM users u JOIN email_confirmations ec ON ec.user_id = u.id WHERE ec.request_id = $1',
          [user.requestId],
        );
        expect(row.rows[0]).toEqual({ confirmed: true, state: 'consumed' });
      },
    );

    test('when already confirmed, confirming again is 200 (idempotent), whatever the code', async () => {
      const user = await registerUser();
      await confirm(user, await codeOf(db.pool, user.requestId));

      const res = await confirm(user, '000000');

      expect(res.status).toBe(200);
      expect(res.body).toEqual({ email_confirmed: true });
    });

    test('when the code is wrong, returns 400 invalid_code and counts the attempt', async () => {
      const user = await registerUser();

      const res = await confirm(user, wrong(await codeOf(db.pool, user.requestId)));

      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('invalid_code');
      const row = await db.pool.query('SELECT attempts, state FROM email_confirmations WHERE request_id = $1', [
        user.requestId,
      ]);
      expect(row.rows[0]).toEqual({ attempts: 1, state: 'pending' });
    });

    test(
      'when CONFIRMATION_MAX_ATTEMPTS wrong codes were tried, returns 429 too_many_attempts even for the right ' +
        'code',
      async () => {
        const user = await registerUser();
        const code = await codeOf(db.pool, user.requestId);
        for (let i = 0; i < 3; i++) expect((await confirm(user, wrong(code))).status).toBe(400);

        const res = await confirm(user, code);

        expect(res.status).toBe(429);
        expect(res.body.error.code).toBe('too_many_attempts');
        const row = await db.pool.query('SELECT email_confirmed_at FROM users WHERE id = $1', [user.userId]);
        expect(row.rows[0].email_confirmed_at).toBeNull();
      },
    );

    test('when the code has expired, returns 400 code_expired', async () => {
      const user = await registerUser();
      const code = await codeOf(db.pool, user.requestId);
      clock.advance(301);

      const res = await confirm(user, code);

      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('code_expired');
    });

    test('when a newer request exists, the older code is rejected and only the newest works', async () => {
      const user = await registerUser();
      const oldCode = await codeOf(db.pool, user.requestId);
      clock.advance(61);
      const resent = await resend(user);
      const newCode = await codeOf(db.pool, resent.body.email_confirmation.request_id);
      if (newCode === oldCode) return; // 1 in a million: the two codes coincide and the check means nothing

      const withOld = await confirm(user, oldCode);
      const withNew = await confirm(user, newCode);

      expect(withOld.status).toBe(400);
      expect(withOld.body.error.code).toBe('invalid_code');
      expect(withNew.status).toBe(200);
      const states = await db.pool.query(
        'SELECT request_id, state FROM email_confirmations WHERE user_id = $1 ORDER BY created_at',
        [user.userId],
      );
      expect(states.rows.map((r) => r.state)).toEqual(['superseded', 'consumed']);
    });

    test('when the code is not 6 digits, returns 400 validation_failed', async () => {
      const user = await registerUser();

      const res = await confirm(user, '12ab');

      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    });
  });

  describe('POST /api/v1/usr/email/resend with a Bearer token', () => {
    test(
      'when the cooldown has passed, returns 202 and commits a new request, a queued status and a ' +
        'mail.requested outbox row, superseding the old code',
      async () => {
        const user = await registerUser();
        clock.advance(61);

        const res = await resend(user);

        expect(res.status).toBe(202);
        expect(res.body).toEqual({
          email_confirmation: { request_id: expect.any(String), status: 'queued' },
          retry_after_s: 60,
        });
        const requestId = res.body.email_confirmation.request_id;
        expect(requestId).not.toBe(user.requestId);
        expect(await codeOf(db.pool, requestId)).toMatch(/^\d{6}$/);
        const mds = await db.pool.query('SELECT status FROM mail_delivery_status WHERE request_id = $1', [requestId]);
        expect(mds.rows).toEqual([{ status: 'queued' }]);
        expect(await pendingCount(user.userId)).toBe(1);
        expect(
          await metricValue(accounts.registry, 'accounts_resend_requests_total', { result: 'queued' }),
        ).toBeGreaterThanOrEqual(1);
      },
    );

    test('when within the cooldown, returns 429 resend_cooldown with Retry-After and sends nothing', async () => {
      const user = await registerUser();
      clock.advance(20);

      const res = await resend(user);

      expect(res.status).toBe(429);
      expect(res.body.error.code).toBe('resend_cooldown');
      expect(res.headers['retry-after']).toBe('40');
      const rows = await db.pool.query(
        `SELECT count(*)::int AS n FROM outbox WHERE type = 'mail.requested' AND key = $1`,
        [user.userId],
      );
      expect(rows.rows[0].n).toBe(1);
    });

    test(
      'when the hourly cap is reached, returns 429 ' + 'resend_cooldown until the oldest request leaves the hour',
      async () => {
        const user = await registerUser();
        clock.advance(61);
        expect((await resend(user)).status).toBe(202);
        clock.advance(61);
        expect((await resend(user)).status).toBe(202);
        clock.advance(61);

        const capped = await resend(user);

        expect(capped.status).toBe(429);
        expect(capped.body.error.code).toBe('resend_cooldown');
        expect(Number(capped.headers['retry-after'])).toBe(3600 - 3 * 61);
        expect(
          await metricValue(accounts.registry, 'accounts_resend_requests_total', { result: 'hourly_cap' }),
        ).toBeGreaterThanOrEqual(1);
      },
    );

    test('when ten resends race, the user row lock lets exactly one through', async () => {
      const user = await registerUser();
      clock.advance(61);

      const results = await Promise.all(Array.from({ length: 10 }, () => resend(user)));

      expect(results.filter((r) => r.status === 202)).toHaveLength(1);
      expect(results.filter((r) => r.status === 429)).toHaveLength(9);
      expect(await pendingCount(user.userId)).toBe(1);
    });

    test('when the email is confirmed, returns 409 already_confirmed', async () => {
      const user = await registerUser();
      await confirm(user, await codeOf(db.pool, user.requestId));

      const res = await resend(user);

      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe('already_confirmed');
    });

    test('when the last delivery failed, the cooldown is lifted', async () => {
      const user = await registerUser();
      await db.pool.query(
        `UPDATE mail_delivery_status SET status = 'failed', attempt = 8, error_class = 'rejected' WHERE request_id = $1`,
        [user.requestId],
      );

      const res = await resend(user);

      expect(res.status).toBe(202);
    });
  });

  describe('POST /api/v1/usr/email/resend without a token', () => {
    const expectSameShape = (res: { status: number; body: unknown }) => {
      expect(res.status).toBe(202);
      expect(res.body).toEqual({
        email_confirmation: { request_id: expect.stringMatching(/^[0-9a-f-]{36}$/), status: 'queued' },
        retry_after_s: 60,
      });
    };
    const mailCount = async () =>
      (await db.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE type = 'mail.requested'`)).rows[0].n as number;

    test('when the address is unknown, answers 202 with the usual body and sends nothing', async () => {
      const before = await mailCount();

      const res = await anonymousResend(uniqueEmail('unknown'));

      expectSameShape(res);
      expect(await mailCount()).toBe(before);
    });

    test('when the account is unconfirmed and out of cooldown, answers 202 and queues a mail for it', async () => {
      const user = await registerUser();
      clock.advance(61);

      const res = await anonymousResend(user.email.toUpperCase());

      expectSameShape(res);
      const rows = await db.pool.query(
        `SELECT payload->>'request_id' AS id FROM outbox WHERE type = 'mail.requested' AND key = $1 ORDER BY outbox.id`,
        [user.userId],
      );
      expect(rows.rows.map((r) => r.id)).toEqual([user.requestId, res.body.email_confirmation.request_id]);
    });

    test('when the account is confirmed or in cooldown, answers the same 202 and sends nothing', async () => {
      const confirmed = await registerUser();
      await confirm(confirmed, await codeOf(db.pool, confirmed.requestId));
      const cooling = await registerUser();
      const before = await mailCount();

      const resConfirmed = await anonymousResend(confirmed.email);
      const resCooling = await anonymousResend(cooling.email);

      expectSameShape(resConfirmed);
      expectSameShape(resCooling);
      expect(await mailCount()).toBe(before);
    });

    test('when the body has no email, returns 400 validation_failed', async () => {
      const res = await accounts.http.post('/api/v1/usr/email/resend').send({});

      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe('validation_failed');
    });
  });

  describe('GET /api/v1/usr/email/status', () => {
    test('right after registration: unconfirmed, last request queued, no resend until the cooldown ends', async () => {
      const user = await registerUser();

      const res = await status(user);

      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        email_confirmed: false,
        last_request: {
          request_id: user.requestId,
          status: 'queued',
          attempts: 0,
          error_class: null,
          updated_at: expect.any(String),
          message: 'The confirmation email is queued and will be sent shortly.',
        },
        can_resend: false,
        retry_after_s: 60,
      });
    });

    test(
      'after the cooldown: can_resend true and retry_after_s 0; once confirmed: email_confirmed true and ' +
        'can_resend false',
      async () => {
        const user = await registerUser();
        clock.advance(61);

        const before = await status(user);
        await confirm(user, await codeOf(db.pool, user.requestId));
        const after = await status(user);

        expect(before.body).toMatchObject({ can_resend: true, retry_after_s: 0 });
        expect(after.body).toMatchObject({ email_confirmed: true, can_resend: false, retry_after_s: 0 });
      },
    );
  });
});
