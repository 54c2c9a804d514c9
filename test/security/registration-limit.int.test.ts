import { createTestDatabase, type TestDatabase } from '../support/infra';
import {
  metricValue,
  startTestAccounts,
  strongPassword,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';

/**
 * Registration abuse: REGISTER_MAX_PER_IP_PER_HOUR per client IP, kept in PostgreSQL so it holds across
 * instances; 409s count (they probe which addresses exist); X-Forwarded-For names the client only
 * with TRUST_PROXY.
 */
describe('per-client-IP registration limit', () => {
  let db: TestDatabase;
  let a: TestAccounts;
  let b: TestAccounts;
  const env = { REGISTER_MAX_PER_IP_PER_HOUR: '3', TRUST_PROXY: 'true' };

  beforeAll(async () => {
    db = await createTestDatabase();
    a = startTestAccounts({ databaseUrl: db.url, env });
    b = startTestAccounts({ databaseUrl: db.url, env });
  });
  afterAll(async () => {
    await a.close();
    await b.close();
    await db.drop();
  });

  const register = (app: TestAccounts, ip: string, email = uniqueEmail('limit')) =>
    app.http.post('/api/v1/usr/register').set('X-Forwarded-For', ip).send({ email, password: strongPassword });

  test(
    'when one client registers past REGISTER_MAX_PER_IP_PER_HOUR across two instances (a 409 included), the ' +
      'next is 429 too_many_registrations with Retry-After and writes no user; another client still registers',
    async () => {
      const first = await register(a, '203.0.113.10');
      const taken = await register(b, '203.0.113.10', first.body.user_data.email);
      const third = await register(a, '203.0.113.10');
      const email = uniqueEmail('refused');
      const refused = await register(b, '203.0.113.10', email);

      expect([first.status, taken.status, third.status]).toEqual([201, 409, 201]);
      expect(refused.status).toBe(429);
      expect(refused.body).toEqual({ error: { code: 'too_many_registrations', message: expect.any(String) } });
      expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(refused.headers['retry-after'])).toBeLessThanOrEqual(3600);
      const users = await db.pool.query(`SELECT 1 FROM users WHERE lower(email) = lower($1)`, [email]);
      expect(users.rowCount).toBe(0);
      expect(await metricValue(b.registry, 'accounts_registrations_total', { result: 'rate_limited' })).toBe(1);
      expect((await register(a, '198.51.100.20')).status).toBe(201);
    },
  );

  test('when many registrations from one client race, at most REGISTER_MAX_PER_IP_PER_HOUR succeed', async () => {
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => register(i % 2 ? a : b, '203.0.113.77')));
    const created = answers.filter((r) => r.status === 201).length;

    expect(created).toBe(3);
    expect(answers.filter((r) => r.status === 429)).toHaveLength(7);
  });

  test(
    'when TRUST_PROXY is off, X-Forwarded-For does not name ' + 'the client: rotating it does not escape the limit',
    async () => {
      const direct = startTestAccounts({ databaseUrl: db.url, env: { REGISTER_MAX_PER_IP_PER_HOUR: '2' } });
      try {
        await db.pool.query(`DELETE FROM registration_limits`);
        const statuses: number[] = [];
        for (let i = 1; i <= 4; i++) statuses.push((await register(direct, `192.0.2.${i}`)).status);
        expect(statuses).toEqual([201, 201, 429, 429]);
      } finally {
        await direct.close();
      }
    },
  );
});
