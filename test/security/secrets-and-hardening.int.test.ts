import jwt from 'jsonwebtoken';
import { listen } from '@shared/http';
import { createTestDatabase, type TestDatabase } from '../support/infra';
import {
  startTestAccounts,
  strongPassword,
  TEST_JWT_SECRET,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';
import { mailRequest, startMailerHarness, type MailerHarness } from '../../services/mailer/test/support/mailer-harness';

/** A secret and the encodings under which a leak could hide. */
const forms = (secret: string) => [
  secret,
  Buffer.from(secret).toString('base64'),
  Buffer.from(secret).toString('base64url'),
  Buffer.from(secret).toString('hex'),
];
const expectNoSecret = (text: string, secret: string) => {
  for (const form of forms(secret)) expect(text).not.toContain(form);
};

describe('secrets never reach metrics, error responses or events', () => {
  describe('accounts with a known JWT_SECRET', () => {
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
      'after successes and every kind of error, neither /metrics nor any response (headers and body) contains ' +
        'the JWT secret',
      async () => {
        const now = Math.floor(Date.now() / 1000);
        const otherKey = jwt.sign(
          { sub: 'x', typ: 'access', iat: now, exp: now + 60 },
          'another-secret-that-is-at-least-32-bytes!',
          { algorithm: 'HS256' },
        );
        const reg = await accounts.http
          .post('/api/v1/usr/register')
          .send({ email: uniqueEmail('secret'), password: strongPassword });
        const responses = [
          reg,
          await accounts.http
            .post('/api/v1/usr/login')
            .send({ email: reg.body.user_data.email, password: 'wrong password' }),
          await accounts.http.post('/api/v1/usr/token/refresh').send({ refresh_token: `${reg.body.refresh_token}x` }),
          await accounts.http.get('/api/v1/usr/email/status').set('Authorization', `Bearer ${otherKey}`),
          await accounts.http.post('/api/v1/usr/register').set('Content-Type', 'application/json').send('{"broken'),
          await accounts.http
            .post('/api/v1/usr/register')
            .send({ email: 'x@example.com', password: 'p'.repeat(70 * 1024) }),
          await accounts.http.get('/api/v1/nope'),
        ];
        const metrics = await accounts.opsHttp.get('/metrics');

        expect(metrics.status).toBe(200);
        expectNoSecret(metrics.text, TEST_JWT_SECRET);
        for (const res of responses) expectNoSecret(JSON.stringify(res.headers) + res.text, TEST_JWT_SECRET);
      },
    );
  });

  describe('mailer with a known SMTP_PASSWORD that the server refuses', () => {
    const SMTP_PASSWORD = 'smtp-password-that-must-stay-secret-42';
    let h: MailerHarness;

    beforeAll(async () => {
      h = await startMailerHarness({
        smtpAuth: { user: 'mailer', pass: 'what-the-server-expects' },
        env: { SMTP_PASSWORD, MAIL_MAX_ATTEMPTS: '2', LOG_LEVEL: 'debug' },
      });
      await h.startInProcess();
    });
    afterAll(async () => {
      await h.stop();
    });

    test(
      'when authentication fails, the error class is auth, and /metrics, logs, status events and DLQ records ' +
        'never contain the password',
      async () => {
        const request = mailRequest();
        await h.produce([request]);

        const status = await h.waitForStatus(request.request_id, 'failed', 30_000);
        const metrics = await h.registry.metrics();

        expect(status.error_class).toBe('auth');
        expect(h.logs.length).toBeGreaterThan(0);
        expectNoSecret(metrics, SMTP_PASSWORD);
        expectNoSecret(h.logs.join('\n'), SMTP_PASSWORD);
        expectNoSecret(JSON.stringify(h.statuses()), SMTP_PASSWORD);
        expectNoSecret(JSON.stringify(h.dlqRecords()), SMTP_PASSWORD);
      },
    );
  });
});

describe('HTTP hardening of the accounts API', () => {
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
    'API answers, errors (400, 401, 404, 413) and the OpenAPI document all carry the security headers and no ' +
      'framework banner',
    async () => {
      const answers = [
        await accounts.http.get('/api/v1/openapi.json'),
        await accounts.http.post('/api/v1/usr/login').send({}),
        await accounts.http.get('/api/v1/usr/email/status'),
        await accounts.http.delete('/api/v1/usr/register'),
        await accounts.http.post('/api/v1/usr/register').send({ password: 'x'.repeat(70 * 1024) }),
      ];

      expect(answers.map((r) => r.status)).toEqual([200, 400, 401, 404, 413]);
      for (const res of answers) {
        expect(res.headers).toMatchObject({
          'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
          'strict-transport-security': expect.stringContaining('max-age='),
          'x-content-type-options': 'nosniff',
          'x-frame-options': 'DENY',
          'referrer-policy': 'no-referrer',
          'cache-control': 'no-store',
        });
        expect(res.headers['x-powered-by']).toBeUndefined();
      }
    },
  );

  test(
    'the HTTP server every service listens with bounds slow clients: headers within 10 s, a whole request ' +
      'within 30 s, idle keep-alive 5 s',
    async () => {
      const server = await listen(accounts.app, 0, '127.0.0.1');
      try {
        expect({
          headers: server.server.headersTimeout,
          request: server.server.requestTimeout,
          keepAlive: server.server.keepAliveTimeout,
        }).toEqual({ headers: 10_000, request: 30_000, keepAlive: 5_000 });
      } finally {
        await server.close();
      }
    },
  );
});
