import { createTestDatabase, type TestDatabase } from '../support/infra';
import {
  anonymousResendSettled,
  startTestAccounts,
  strongPassword,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';

/**
 * Every SQL statement is parameterised: hostile strings in every field of every endpoint are data.
 * (CR/LF and markup in names reaching a mail are the mailer's side: see
 * services/mailer/test/delivery.int.test.ts, "when a name carries CR/LF and markup ...".)
 */
const HOSTILE = [
  "'; DROP TABLE users; --",
  "' OR '1'='1",
  '%',
  '_',
  '%_%',
  '\\',
  "\\'; SELECT pg_sleep(5); --",
  '$1',
  '"); DELETE FROM outbox; --',
  '𝕏😀 4-byte 𠜎',
  '\r\nBcc: victim@evil.test',
  '<img src=x onerror=alert(1)>',
];
const NUL = 'nul\u0000byte';

describe('injection: hostile strings in every field are stored verbatim or rejected, never executed', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;
  let victim: { email: string; referral: string; access: string };

  beforeAll(async () => {
    db = await createTestDatabase();
    accounts = startTestAccounts({
      databaseUrl: db.url,
      env: { RESEND_COOLDOWN_S: '0', RESEND_MAX_PER_HOUR: '100', LOGIN_MAX_FAILURES: '1000' },
    });
    const email = uniqueEmail('victim');
    const res = await accounts.http.post('/api/v1/usr/register').send({ email, password: strongPassword });
    victim = { email, referral: res.body.user_data.referral_code, access: res.body.access_token };
  });
  afterAll(async () => {
    await accounts.close();
    await db.drop();
  });

  const tables = async () =>
    (
      await db.pool.query<{ table_name: string }>(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1`,
      )
    ).rows.map((r) => r.table_name);
  const mails = async () =>
    (await db.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE type = 'mail.requested'`)).rows[0].n as number;

  test.each(HOSTILE)(
    'register with %j as first and last name and inside the password: 201, stored verbatim, and the password logs in',
    async (hostile) => {
      const email = uniqueEmail('inj');
      const password = `${hostile}${strongPassword}`;
      const res = await accounts.http
        .post('/api/v1/usr/register')
        .send({ email, password, first_name: hostile, last_name: hostile });

      expect(res.status).toBe(201);
      expect(res.body.user_data).toMatchObject({ first_name: hostile.trim(), last_name: hostile.trim() });
      const row = await db.pool.query(`SELECT first_name, last_name FROM users WHERE id = $1`, [res.body.user_data.id]);
      expect(row.rows[0]).toEqual({ first_name: hostile.trim(), last_name: hostile.trim() });
      const outbox = await db.pool.query(
        `SELECT payload->'vars'->>'first_name' AS name FROM outbox WHERE type = 'mail.requested' AND key = $1`,
        [res.body.user_data.id],
      );
      expect(outbox.rows[0].name).toBe(hostile.trim());
      expect((await accounts.http.post('/api/v1/usr/login').send({ email, password })).status).toBe(200);
    },
  );

  test.each(HOSTILE)(
    '%j as email, referral code, refresh token, code and Bearer token: a 4xx (or the anonymous 202), no wildcard match, no mail',
    async (hostile) => {
      const before = await mails();
      const answers = [
        await accounts.http.post('/api/v1/usr/register').send({ email: hostile, password: strongPassword }),
        await accounts.http
          .post('/api/v1/usr/register')
          .send({ email: uniqueEmail('ref'), password: strongPassword, referral_code: hostile }),
        await accounts.http.post('/api/v1/usr/login').send({ email: hostile, password: strongPassword }),
        await accounts.http.post('/api/v1/usr/login').send({ email: victim.email, password: hostile }),
        await accounts.http.post('/api/v1/usr/token/refresh').send({ refresh_token: hostile }),
        await accounts.http
          .post('/api/v1/usr/email/confirm')
          .set('Authorization', `Bearer ${victim.access}`)
          .send({ code: hostile }),
      ];
      // Only printable ASCII goes into the header: the HTTP client itself refuses CR/LF and non-Latin-1.
      if (/^[\x20-\x7e]*$/.test(hostile))
        answers.push(await accounts.http.get('/api/v1/usr/email/status').set('Authorization', `Bearer ${hostile}`));
      const anonymous = await anonymousResendSettled(accounts, { email: hostile });

      for (const res of answers) {
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(res.body.error.code).toMatch(/^[a-z_]+$/);
      }
      // '%' and '_' must not match the victim's referral code or address as LIKE patterns would.
      expect(answers[1]?.body.error.code).toBe('invalid_referral_code');
      expect(answers[2]?.status).toBe(401);
      expect(anonymous.status).toBe(202);
      expect(await mails()).toBe(before);
    },
  );

  test(
    'a NUL byte in any text field of any endpoint is ' + '400 validation_failed naming the field, not a 500',
    async () => {
      const cases: [
        string,
        () => Promise<{ status: number; body: { error: { code: string; details: { path: string }[] } } }>,
        string,
      ][] = [
        [
          'register email',
          () =>
            accounts.http.post('/api/v1/usr/register').send({ email: `a${NUL}@example.com`, password: strongPassword }),
          'email',
        ],
        [
          'register password',
          () =>
            accounts.http
              .post('/api/v1/usr/register')
              .send({ email: uniqueEmail('nul'), password: `${strongPassword}${NUL}` }),
          'password',
        ],
        [
          'register first_name',
          () =>
            accounts.http
              .post('/api/v1/usr/register')
              .send({ email: uniqueEmail('nul'), password: strongPassword, first_name: NUL }),
          'first_name',
        ],
        [
          'register last_name',
          () =>
            accounts.http
              .post('/api/v1/usr/register')
              .send({ email: uniqueEmail('nul'), password: strongPassword, last_name: NUL }),
          'last_name',
        ],
        [
          'register referral_code',
          () =>
            accounts.http
              .post('/api/v1/usr/register')
              .send({ email: uniqueEmail('nul'), password: strongPassword, referral_code: NUL }),
          'referral_code',
        ],
        [
          'login email',
          () => accounts.http.post('/api/v1/usr/login').send({ email: NUL, password: strongPassword }),
          'email',
        ],
        [
          'login password',
          () => accounts.http.post('/api/v1/usr/login').send({ email: victim.email, password: NUL }),
          'password',
        ],
        [
          'refresh token',
          () => accounts.http.post('/api/v1/usr/token/refresh').send({ refresh_token: NUL }),
          'refresh_token',
        ],
        [
          'confirmation code',
          () =>
            accounts.http
              .post('/api/v1/usr/email/confirm')
              .set('Authorization', `Bearer ${victim.access}`)
              .send({ code: NUL }),
          'code',
        ],
        ['anonymous resend email', () => accounts.http.post('/api/v1/usr/email/resend').send({ email: NUL }), 'email'],
      ];
      for (const [label, call, field] of cases) {
        const res = await call();
        expect({
          label,
          status: res.status,
          code: res.body.error.code,
          paths: res.body.error.details.map((d) => d.path),
        }).toEqual({ label, status: 400, code: 'validation_failed', paths: [field] });
      }
    },
  );

  test('after all of it every table is still there and the victim still logs in', async () => {
    expect(await tables()).toEqual(
      expect.arrayContaining([
        'users',
        'affiliates',
        'email_confirmations',
        'refresh_tokens',
        'outbox',
        'mail_delivery_status',
        'login_throttle',
      ]),
    );
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM users`)).rows[0].n).toBe(1 + HOSTILE.length);
    expect(
      (await accounts.http.post('/api/v1/usr/login').send({ email: victim.email, password: strongPassword })).status,
    ).toBe(200);
  });
});
