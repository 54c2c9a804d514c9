import jwt from 'jsonwebtoken';
import { createTestDatabase, type TestDatabase } from '../support/infra';
import {
  startTestAccounts,
  strongPassword,
  TEST_JWT_SECRET,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';

/**
 * What services/accounts/test/tokens.int.test.ts does not already cover (alg none, algorithm
 * confusion, expiry, iss/aud, tampering, refresh reuse, refresh token as Bearer, access token as
 * refresh token): correctly signed tokens whose user is gone.
 */
describe('tokens: a correctly signed token is worth nothing once its user is gone', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;

  beforeAll(async () => {
    db = await createTestDatabase();
    accounts = startTestAccounts({ databaseUrl: db.url });
  });
  afterAll(async () => {
    await accounts.close();
    await db.drop();
  });

  test(
    'when the user was deleted, its access token gets 401 invalid_token on every Bearer endpoint and its ' +
      'refresh token 401 too',
    async () => {
      const reg = await accounts.http
        .post('/api/v1/usr/register')
        .send({ email: uniqueEmail('gone'), password: strongPassword });
      const { access_token: access, refresh_token: refresh } = reg.body as {
        access_token: string;
        refresh_token: string;
      };
      await db.pool.query(`DELETE FROM users WHERE id = $1`, [reg.body.user_data.id]);

      const answers = [
        await accounts.http.get('/api/v1/usr/email/status').set('Authorization', `Bearer ${access}`),
        await accounts.http
          .post('/api/v1/usr/email/confirm')
          .set('Authorization', `Bearer ${access}`)
          .send({ code: '123456' }),
        await accounts.http.post('/api/v1/usr/email/resend').set('Authorization', `Bearer ${access}`),
        await accounts.http.post('/api/v1/usr/token/refresh').send({ refresh_token: refresh }),
      ];

      expect(answers.map((r) => [r.status, r.body.error.code])).toEqual([
        [401, 'invalid_token'],
        [401, 'invalid_token'],
        [401, 'invalid_token'],
        [401, 'invalid_token'],
      ]);
    },
  );

  test(
    'when a token is minted with the real secret for a user id that never existed, every Bearer endpoint ' +
      'answers 401 invalid_token',
    async () => {
      const now = Math.floor(Date.now() / 1000);
      const forged = jwt.sign(
        {
          sub: '00000000-0000-4000-8000-000000000000',
          typ: 'access',
          jti: 'j',
          iss: accounts.config.JWT_ISSUER,
          aud: accounts.config.JWT_AUDIENCE,
          iat: now,
          exp: now + 600,
        },
        TEST_JWT_SECRET,
        { algorithm: 'HS256' },
      );

      const status = await accounts.http.get('/api/v1/usr/email/status').set('Authorization', `Bearer ${forged}`);
      const resend = await accounts.http.post('/api/v1/usr/email/resend').set('Authorization', `Bearer ${forged}`);

      expect([status.status, status.body.error.code, resend.status, resend.body.error.code]).toEqual([
        401,
        'invalid_token',
        401,
        'invalid_token',
      ]);
    },
  );
});
