import { createTestDatabase, type TestDatabase } from '../support/infra';
import {
  codeOf,
  createTestClock,
  startTestAccounts,
  strongPassword,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';

/**
 * The abuse caps live in PostgreSQL, so they hold across instances: two accounts apps on one
 * database, one shared clock, each request sent to the other instance than the one before.
 * (Login throttling across two instances: services/accounts/test/login.int.test.ts.)
 */
describe('abuse caps hold across two accounts instances on one database', () => {
  let db: TestDatabase;
  let a: TestAccounts;
  let b: TestAccounts;
  const clock = createTestClock();
  const env = { RESEND_COOLDOWN_S: '60', RESEND_MAX_PER_HOUR: '3', CONFIRMATION_MAX_ATTEMPTS: '3' };

  beforeAll(async () => {
    db = await createTestDatabase();
    a = startTestAccounts({ databaseUrl: db.url, env, clock });
    b = startTestAccounts({ databaseUrl: db.url, env, clock });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await db.drop();
  });

  const register = async () => {
    const res = await a.http.post('/api/v1/usr/register').send({ email: uniqueEmail('cap'), password: strongPassword });
    expect(res.status).toBe(201);
    return {
      token: res.body.access_token as string,
      requestId: res.body.email_confirmation.request_id as string,
      userId: res.body.user_data.id as string,
    };
  };
  const resend = (app: TestAccounts, token: string) =>
    app.http.post('/api/v1/usr/email/resend').set('Authorization', `Bearer ${token}`);
  const confirm = (app: TestAccounts, token: string, code: string) =>
    app.http.post('/api/v1/usr/email/confirm').set('Authorization', `Bearer ${token}`).send({ code });

  test(
    'when wrong codes are spread over resends and both instances, the per-user cap ' +
      '(CONFIRMATION_MAX_FAILURES_PER_DAY) stops them, even the right code of a fresh request, until a day has ' +
      'passed',
    async () => {
      const capped = {
        ...env,
        RESEND_COOLDOWN_S: '0',
        RESEND_MAX_PER_HOUR: '100',
        CONFIRMATION_MAX_FAILURES_PER_DAY: '5',
      };
      const [c, d] = [
        startTestAccounts({ databaseUrl: db.url, env: capped, clock }),
        startTestAccounts({ databaseUrl: db.url, env: capped, clock }),
      ];
      try {
        const user = await register();
        const answers: number[] = [];
        let requestId = user.requestId;
        for (let round = 0; round < 3; round++) {
          const right = await codeOf(db.pool, requestId);
          const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
          for (const app of [c, d]) answers.push((await confirm(app, user.token, wrong)).status);
          const resent = await resend(round % 2 ? c : d, user.token);
          expect(resent.status).toBe(202);
          requestId = resent.body.email_confirmation.request_id;
        }
        const fresh = await confirm(c, user.token, await codeOf(db.pool, requestId));

        expect(answers).toEqual([400, 400, 400, 400, 400, 429]);
        expect(fresh.status).toBe(429);
        expect(fresh.body.error.code).toBe('too_many_attempts');
        clock.advance(86_400 + 901);
        try {
          // The access token expired meanwhile: log in again.
          const { email } = (await db.pool.query(`SELECT email FROM users WHERE id = $1`, [user.userId])).rows[0];
          const token = (await d.http.post('/api/v1/usr/login').send({ email, password: strongPassword })).body
            .access_token as string;
          const resent = await resend(d, token);
          expect(
            (await confirm(d, token, await codeOf(db.pool, resent.body.email_confirmation.request_id))).status,
          ).toBe(200);
        } finally {
          clock.advance(-(86_400 + 901));
        }
      } finally {
        await c.close();
        await d.close();
      }
    },
  );

  test(
    'when a user resends on instance B right after one on instance A, B answers 429 resend_cooldown with ' +
      'Retry-After',
    async () => {
      const user = await register();
      clock.advance(61);

      const first = await resend(a, user.token);
      const second = await resend(b, user.token);

      expect(first.status).toBe(202);
      expect(second.status).toBe(429);
      expect(second.body.error.code).toBe('resend_cooldown');
      expect(Number(second.headers['retry-after'])).toBeGreaterThan(0);
    },
  );

  test(
    'when resends alternate between instances past each cooldown, the hourly cap (registration included) stops ' +
      'the fourth request',
    async () => {
      const user = await register();
      const answers: number[] = [];
      for (const app of [a, b, a]) {
        clock.advance(61);
        answers.push((await resend(app, user.token)).status);
      }

      expect(answers).toEqual([202, 202, 429]);
      const requests = await db.pool.query(`SELECT count(*)::int AS n FROM email_confirmations WHERE user_id = $1`, [
        user.userId,
      ]);
      expect(requests.rows[0].n).toBe(3);
    },
  );

  test(
    'when wrong codes are spread over both instances, CONFIRMATION_MAX_ATTEMPTS locks the request everywhere, ' +
      'even for the right code',
    async () => {
      const user = await register();
      const code = await codeOf(db.pool, user.requestId);
      const wrong = String((Number(code) + 1) % 1_000_000).padStart(6, '0');

      const tries = [
        await confirm(a, user.token, wrong),
        await confirm(b, user.token, wrong),
        await confirm(a, user.token, wrong),
      ];
      const right = await confirm(b, user.token, code);

      expect(tries.map((r) => r.body.error.code)).toEqual(['invalid_code', 'invalid_code', 'invalid_code']);
      expect(right.status).toBe(429);
      expect(right.body.error.code).toBe('too_many_attempts');
    },
  );

  test(
    'when twenty wrong codes race over both instances, no more than CONFIRMATION_MAX_ATTEMPTS are judged and ' +
      'the rest are 429',
    async () => {
      const user = await register();
      const code = await codeOf(db.pool, user.requestId);
      const wrong = String((Number(code) + 7) % 1_000_000).padStart(6, '0');

      const answers = await Promise.all(
        Array.from({ length: 20 }, (_, i) => confirm(i % 2 ? a : b, user.token, wrong)),
      );

      const codes = answers.map((r) => r.body.error.code as string);
      expect(codes.filter((c) => c === 'invalid_code')).toHaveLength(3);
      expect(codes.filter((c) => c === 'too_many_attempts')).toHaveLength(17);
      expect((await confirm(a, user.token, code)).status).toBe(429);
    },
  );
});
