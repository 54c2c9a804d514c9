import { listen, type HttpServer } from '@shared/http';
import { createTestDatabase, type TestDatabase } from '../support/infra';
import {
  startTestAccounts,
  strongPassword,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';

/**
 * The login throttle under real concurrency (a listening server, 50 requests in flight at once) and
 * lockout abuse: the attempt is reserved in PostgreSQL before argon2 runs; the limit is per
 * (address, client IP) with a higher per-address ceiling; X-Forwarded-For counts only with TRUST_PROXY.
 */
describe('login throttle', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  const start = async (env: Record<string, string>): Promise<{ accounts: TestAccounts; server: HttpServer }> => {
    const accounts = startTestAccounts({
      databaseUrl: db.url,
      env: { LOGIN_MAX_FAILURES: '5', LOGIN_FAILURE_WINDOW_S: '900', ...env },
    });
    return { accounts, server: await listen(accounts.app, 0, '127.0.0.1') };
  };
  const stop = async (s: { accounts: TestAccounts; server: HttpServer }) => {
    await s.server.close();
    await s.accounts.close();
  };
  const login = (server: HttpServer, email: string, password: string, forwardedFor?: string) =>
    fetch(`${server.url}/api/v1/usr/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}) },
      body: JSON.stringify({ email, password }),
    });
  const register = async (s: { accounts: TestAccounts }) => {
    const email = uniqueEmail('throttle');
    expect((await s.accounts.http.post('/api/v1/usr/register').send({ email, password: strongPassword })).status).toBe(
      201,
    );
    return email;
  };
  const counts = (statuses: number[]) =>
    statuses.reduce<Record<number, number>>((acc, s) => ({ ...acc, [s]: (acc[s] ?? 0) + 1 }), {});

  test(
    'when 50 wrong logins for one address arrive at once from one client, at most LOGIN_MAX_FAILURES are 401 ' +
      '(argon2 runs that often), the rest 429 without hashing; the owner then logs in from another client IP',
    async () => {
      const s = await start({ TRUST_PROXY: 'true' });
      try {
        const email = await register(s);
        const verify = jest.spyOn(s.accounts.deps.hasher, 'verify');
        const burst = await Promise.all(
          Array.from({ length: 50 }, (_, i) => login(s.server, email, `wrong password ${i}`, '203.0.113.7')),
        );
        const statuses = counts(burst.map((r) => r.status));
        const verifications = verify.mock.calls.length;
        verify.mockRestore();

        expect(statuses[401] ?? 0).toBeLessThanOrEqual(5);
        expect((statuses[401] ?? 0) + (statuses[429] ?? 0)).toBe(50);
        expect(verifications).toBeLessThanOrEqual(5);
        const refused = burst.find((r) => r.status === 429);
        expect(Number(refused?.headers.get('retry-after'))).toBeGreaterThan(0);
        expect((await login(s.server, email, strongPassword, '203.0.113.7')).status).toBe(429);

        const owner = await login(s.server, email, strongPassword, '198.51.100.9');
        expect(owner.status).toBe(200);
      } finally {
        await stop(s);
      }
    },
  );

  test(
    'when TRUST_PROXY is off (the default), a client rotating X-Forwarded-For is still one client and gets 429 ' +
      'after LOGIN_MAX_FAILURES',
    async () => {
      const s = await start({});
      try {
        const email = await register(s);
        const statuses: number[] = [];
        for (let i = 0; i < 8; i++)
          statuses.push((await login(s.server, email, `wrong password ${i}`, `192.0.2.${i + 1}`)).status);

        expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
      } finally {
        await stop(s);
      }
    },
  );

  test(
    'when guesses come from many client IPs, the per-address ceiling (LOGIN_MAX_FAILURES_PER_ADDRESS) caps ' +
      'them all, and a success clears it',
    async () => {
      const s = await start({ TRUST_PROXY: 'true', LOGIN_MAX_FAILURES_PER_ADDRESS: '8' });
      try {
        const email = await register(s);
        const statuses: number[] = [];
        for (let ip = 1; ip <= 4; ip++)
          for (let i = 0; i < 3; i++)
            statuses.push((await login(s.server, email, `wrong ${ip}.${i}`, `192.0.2.${ip}`)).status);

        expect(counts(statuses)).toEqual({ 401: 8, 429: 4 });
        expect((await login(s.server, email, strongPassword, '198.51.100.1')).status).toBe(429);
        await db.pool.query(`UPDATE login_throttle SET failures = 0 WHERE address = lower($1)`, [email]);
        expect((await login(s.server, email, strongPassword, '198.51.100.1')).status).toBe(200);
        const left = await db.pool.query(`SELECT 1 FROM login_throttle WHERE address = lower($1)`, [email]);
        expect(left.rowCount).toBe(0);
      } finally {
        await stop(s);
      }
    },
  );
});
