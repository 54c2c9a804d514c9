import { generateKeyPairSync } from 'node:crypto';
import jwt from 'jsonwebtoken';
import {
  createTestClock,
  strongPassword,
  TEST_JWT_SECRET,
  uniqueEmail,
  withTestAccounts,
} from './support/accounts-app';

describe('tokens: POST /api/v1/usr/token/refresh and Bearer access tokens', () => {
  const clock = createTestClock();
  const { db, accounts } = withTestAccounts({ clock });
  const ISS = 'registration-platform/accounts';
  const AUD = 'registration-platform';

  const registerUser = async () => {
    const res = await accounts.http
      .post('/api/v1/usr/register')
      .send({ email: uniqueEmail('tok'), password: strongPassword });
    expect(res.status).toBe(201);
    return res.body as { access_token: string; refresh_token: string; user_data: { id: string } };
  };
  const refresh = (refresh_token: string) => accounts.http.post('/api/v1/usr/token/refresh').send({ refresh_token });
  const status = (accessToken: string) =>
    accounts.http.get('/api/v1/usr/email/status').set('Authorization', `Bearer ${accessToken}`);
  const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');

  test('when the refresh token is fresh, returns a new pair and marks the old token used', async () => {
    const user = await registerUser();

    const res = await refresh(user.refresh_token);

    expect(res.status).toBe(200);
    expect(res.body).toEqual({ access_token: expect.any(String), refresh_token: expect.any(String) });
    expect(res.body.refresh_token).not.toBe(user.refresh_token);
    expect((await status(res.body.access_token)).status).toBe(200);
    const rows = await db.pool.query(
      'SELECT count(*)::int AS n, count(used_at)::int AS used, count(DISTINCT family_id)::int AS families FROM refresh_tokens WHERE user_id = $1',
      [user.user_data.id],
    );
    expect(rows.rows[0]).toEqual({ n: 2, used: 1, families: 1 });
  });

  test(
    'when a used refresh token is replayed, returns 401 token_reused and revokes the family, so the newest ' +
      'token fails too',
    async () => {
      const user = await registerUser();
      const rotated = await refresh(user.refresh_token);

      const replay = await refresh(user.refresh_token);
      const newest = await refresh(rotated.body.refresh_token);

      expect(replay.status).toBe(401);
      expect(replay.body.error.code).toBe('token_reused');
      expect(newest.status).toBe(401);
      expect(newest.body.error.code).toBe('token_reused');
      const rows = await db.pool.query(
        'SELECT count(*)::int AS n, count(revoked_at)::int AS revoked FROM refresh_tokens WHERE user_id = $1',
        [user.user_data.id],
      );
      expect(rows.rows[0]).toEqual({ n: 2, revoked: 2 });
    },
  );

  test('when the same refresh token is used twice at once, exactly one call rotates it', async () => {
    const user = await registerUser();

    const results = await Promise.all([refresh(user.refresh_token), refresh(user.refresh_token)]);

    expect(results.map((r) => r.status).sort()).toEqual([200, 401]);
  });

  test('when the refresh token has expired, returns 401 token_expired', async () => {
    const user = await registerUser();
    clock.advance(7 * 86_400 + 1);
    try {
      const res = await refresh(user.refresh_token);

      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('token_expired');
    } finally {
      clock.advance(-(7 * 86_400 + 1));
    }
  });

  test('when the access token has expired, the Bearer endpoints return 401 token_expired', async () => {
    const user = await registerUser();
    clock.advance(15 * 60 + 1);
    try {
      const res = await status(user.access_token);

      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('token_expired');
    } finally {
      clock.advance(-(15 * 60 + 1));
    }
  });

  describe('forged and wrong tokens are rejected with 401 invalid_token', () => {
    let user: Awaited<ReturnType<typeof registerUser>>;
    beforeAll(async () => {
      user = await registerUser();
    });
    const claims = () => ({
      sub: user.user_data.id,
      typ: 'access',
      jti: 'x',
      iss: ISS,
      aud: AUD,
      iat: Math.floor(Date.now() / 1000),
      exp: Math.floor(Date.now() / 1000) + 600,
    });

    const forged: [string, () => string][] = [
      ['alg none', () => `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims())}.`],
      [
        'HS512 with the right secret (algorithm not allowed)',
        () => jwt.sign(claims(), TEST_JWT_SECRET, { algorithm: 'HS512' }),
      ],
      [
        'RS256 with an attacker key (algorithm confusion)',
        () =>
          jwt.sign(
            claims(),
            generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
            { algorithm: 'RS256' },
          ),
      ],
      ['a wrong issuer', () => jwt.sign({ ...claims(), iss: 'someone-else' }, TEST_JWT_SECRET, { algorithm: 'HS256' })],
      [
        'a wrong audience',
        () => jwt.sign({ ...claims(), aud: 'another-app' }, TEST_JWT_SECRET, { algorithm: 'HS256' }),
      ],
      ['another secret', () => jwt.sign(claims(), 'another-secret-that-is-at-least-32-bytes!', { algorithm: 'HS256' })],
      [
        'a tampered payload (signature no longer matches)',
        () => {
          const [h, , s] = user.access_token.split('.');
          return `${h}.${b64({ ...claims(), sub: '00000000-0000-4000-8000-000000000000' })}.${s}`;
        },
      ],
      ['a refresh token used as a Bearer token', () => user.refresh_token],
      ['garbage', () => 'not.a.jwt'],
    ];

    test.each(forged)('Bearer with %s', async (_label, token) => {
      const res = await status(token());

      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: { code: 'invalid_token', message: expect.any(String) } });
    });

    test('refresh with an access token, a forged alg-none refresh token or garbage', async () => {
      const noneRefresh = `${b64({ alg: 'none' })}.${b64({ ...claims(), typ: 'refresh', fam: 'f' })}.`;
      for (const token of [user.access_token, noneRefresh, 'garbage']) {
        const res = await refresh(token);
        expect(res.status).toBe(401);
        expect(res.body.error.code).toBe('invalid_token');
      }
    });

    test('a missing Authorization header', async () => {
      const res = await accounts.http.get('/api/v1/usr/email/status');

      expect(res.status).toBe(401);
      expect(res.body.error.code).toBe('invalid_token');
    });
  });
});
