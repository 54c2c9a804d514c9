import type { Test } from 'supertest';
import { migrateService } from '../../../scripts/migrate';
import { startPrivatePostgres, type PrivatePostgres } from '../../../test/support/private-postgres';
import { waitFor } from '../../../test/support/wait-for';
import { startTestAccounts, strongPassword, uniqueEmail, type TestAccounts } from './support/accounts-app';

/**
 * Guarantee 8 for every endpoint besides register (register.int.test.ts, test/e2e/postgres-crash): with
 * PostgreSQL crashed, accounts answers 503 `unavailable` in the contract's error shape — never a 500,
 * never a request left hanging, never the database's password, address or a stack trace in the body.
 * The server is a PostgreSQL of the test's own, SIGKILLed with the app's pool connected to it.
 */
// Past the pool's longest wait (DB_CONNECT_TIMEOUT_MS, 5 s) and short of the app's own request timeout
// (25 s, which would answer 503 `timeout`): an answer still missing by then is a hang.
const CLIENT_TIMEOUT_MS = 15_000;
// Trust authentication ignores it; it is in DATABASE_URL, where a leaking error message would carry it.
const DB_PASSWORD = 'pg-pa55word-never-in-a-response';

type Session = { email: string; access_token: string; refresh_token: string };

describe('accounts while PostgreSQL is down', () => {
  let server: PrivatePostgres;
  let accounts: TestAccounts;
  const session: Session = { email: uniqueEmail('pgdown'), access_token: '', refresh_token: '' };

  beforeAll(async () => {
    server = await startPrivatePostgres();
    await migrateService({ service: 'accounts', databaseUrl: server.url() });
    accounts = startTestAccounts({ databaseUrl: server.url().replace('postgres@', `postgres:${DB_PASSWORD}@`) });
    accounts.pool.on('error', () => undefined);
    const registered = await accounts.http
      .post('/api/v1/usr/register')
      .send({ email: session.email, password: strongPassword });
    expect(registered.status).toBe(201);
    session.access_token = registered.body.access_token;
    session.refresh_token = registered.body.refresh_token;
    // The pool holds live connections when the server dies: the requests below meet dead ones and refused ones.
    await server.crash();
  }, 120_000);

  afterAll(async () => {
    await accounts?.close();
    await server?.destroy();
  }, 60_000);

  const bearer = () => `Bearer ${session.access_token}`;
  const endpoints: [string, (http: TestAccounts['http']) => Test][] = [
    ['POST login', (http) => http.post('/api/v1/usr/login').send({ email: session.email, password: strongPassword })],
    [
      'POST token/refresh',
      (http) => http.post('/api/v1/usr/token/refresh').send({ refresh_token: session.refresh_token }),
    ],
    [
      'POST email/confirm (Bearer)',
      (http) => http.post('/api/v1/usr/email/confirm').set('Authorization', bearer()).send({ code: '123456' }),
    ],
    ['POST email/resend (Bearer)', (http) => http.post('/api/v1/usr/email/resend').set('Authorization', bearer())],
    ['POST email/resend ({email})', (http) => http.post('/api/v1/usr/email/resend').send({ email: session.email })],
    [
      'POST email/resend ({email}, no such account)',
      (http) => http.post('/api/v1/usr/email/resend').send({ email: uniqueEmail('nobody') }),
    ],
    ['GET email/status (Bearer)', (http) => http.get('/api/v1/usr/email/status').set('Authorization', bearer())],
  ];

  test.each(endpoints)(
    'when PostgreSQL has crashed, %s answers 503 unavailable with Retry-After, in the contract shape, without ' +
      'the database password, address or a stack trace',
    async (_name, send) => {
      const res = await send(accounts.http).timeout(CLIENT_TIMEOUT_MS);

      expect({ status: res.status, body: res.body }).toEqual({
        status: 503,
        body: { error: { code: 'unavailable', message: expect.any(String) } },
      });
      expect(res.headers['content-type']).toMatch(/^application\/json/);
      expect(res.headers['retry-after']).toMatch(/^\d+$/);
      for (const secret of [DB_PASSWORD, 'postgres://', String(server.port), 'ECONNREFUSED', '    at '])
        expect({ secret, found: res.text.includes(secret) }).toEqual({ secret, found: false });
    },
  );

  test('when PostgreSQL is back, the same session logs in and reads its status again', async () => {
    await server.start();

    // The pool may still hand out a connection that died with the old server: a client retries a 503.
    const login = await waitFor(
      async () => {
        const res = await accounts.http
          .post('/api/v1/usr/login')
          .send({ email: session.email, password: strongPassword });
        return res.status === 200 && res;
      },
      { timeoutMs: 30_000, message: 'login answers 200 after the restart' },
    );
    const status = await accounts.http
      .get('/api/v1/usr/email/status')
      .set('Authorization', `Bearer ${login.body.access_token}`);

    expect(status.status).toBe(200);
    expect(status.body).toMatchObject({ email_confirmed: false, last_request: { status: 'queued' } });
  }, 60_000);
});
