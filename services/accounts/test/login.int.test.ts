import {
  createTestClock,
  strongPassword,
  uniqueEmail,
  withTestAccounts,
  type TestAccounts,
} from './support/accounts-app';

describe('POST /api/v1/usr/login', () => {
  const clock = createTestClock();
  const env = { LOGIN_MAX_FAILURES: '3', LOGIN_FAILURE_WINDOW_S: '600' };
  // Two instances on one database: the failure limit must hold across them.
  const { db, instances } = withTestAccounts({ env, clock, instances: 2 });
  const [first, second] = instances as [TestAccounts, TestAccounts];

  const registerUser = async (email = uniqueEmail('login')) => {
    const res = await first.http
      .post('/api/v1/usr/register')
      .send({ email, password: strongPassword, first_name: 'Lo' });
    expect(res.status).toBe(201);
    return { email, id: res.body.user_data.id as string };
  };
  const login = (accounts: TestAccounts, email: string, password: string) =>
    accounts.http.post('/api/v1/usr/login').send({ email, password });

  test(
    'when the credentials are right (email in any case), returns 200 with a token pair and user data, and ' +
      'starts a new token family',
    async () => {
      const user = await registerUser();

      const res = await login(second, user.email.toUpperCase(), strongPassword);

      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        access_token: expect.any(String),
        refresh_token: expect.any(String),
        user_data: expect.objectContaining({
          id: user.id,
          email: user.email,
          first_name: 'Lo',
          email_confirmed: false,
        }),
      });
      const families = await db.pool.query(
        'SELECT count(DISTINCT family_id)::int AS n FROM refresh_tokens WHERE user_id = $1',
        [user.id],
      );
      expect(families.rows[0].n).toBe(2);
    },
  );

  test('when the email is unknown or the password wrong, returns the same 401 invalid_credentials body', async () => {
    const user = await registerUser();

    const wrongPassword = await login(first, user.email, 'wrong password!');
    const unknownEmail = await login(first, uniqueEmail('nobody'), 'wrong password!');

    expect(wrongPassword.status).toBe(401);
    expect(unknownEmail.status).toBe(401);
    expect(wrongPassword.body).toEqual({ error: { code: 'invalid_credentials', message: expect.any(String) } });
    expect(unknownEmail.body).toEqual(wrongPassword.body);
  });

  test(
    'when the email is unknown, a dummy argon2 hash is verified so the failure costs what a wrong password ' + 'costs',
    async () => {
      const verifyDummy = jest.spyOn(first.deps.hasher, 'verifyDummy');
      const verify = jest.spyOn(first.deps.hasher, 'verify');
      try {
        await login(first, uniqueEmail('ghost'), 'some password');

        expect(verifyDummy).toHaveBeenCalledTimes(1);
        expect(verify).not.toHaveBeenCalled();
      } finally {
        verifyDummy.mockRestore();
        verify.mockRestore();
      }
    },
  );

  test(
    'when an address failed LOGIN_MAX_FAILURES times across two instances, the next login is 429 ' +
      'too_many_attempts with Retry-After, even with the right password',
    async () => {
      const user = await registerUser();
      await login(first, user.email, 'wrong-1-password');
      await login(second, user.email, 'wrong-2-password');
      await login(first, user.email, 'wrong-3-password');

      const blocked = await login(second, user.email, strongPassword);

      expect(blocked.status).toBe(429);
      expect(blocked.body.error.code).toBe('too_many_attempts');
      expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(blocked.headers['retry-after'])).toBeLessThanOrEqual(600);
      const row = await db.pool.query('SELECT failures FROM login_throttle WHERE address = lower($1)', [user.email]);
      expect(row.rows[0].failures).toBe(3);
    },
  );

  test('when the failure window has passed, the right password logs in again and clears the failures', async () => {
    const user = await registerUser();
    for (let i = 0; i < 3; i++) await login(first, user.email, `wrong-${i}-password`);
    clock.advance(601);
    try {
      const res = await login(first, user.email, strongPassword);

      expect(res.status).toBe(200);
      const row = await db.pool.query('SELECT 1 FROM login_throttle WHERE address = lower($1)', [user.email]);
      expect(row.rowCount).toBe(0);
    } finally {
      clock.advance(-601);
    }
  });

  test('when the body is missing fields, returns 400 validation_failed', async () => {
    const res = await first.http.post('/api/v1/usr/login').send({ email: 'x@example.com' });

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
  });
});
