import type { Producer } from 'kafkajs';
import { buildEnvelope, EVENT_TYPE, envelopeHeaders, type MailDeliveryStatusPayload } from '@shared/events';
import { createKafka } from '@shared/kafka';
import { topicNames } from '@shared/topics';
import {
  createTestDatabase,
  testBrokers,
  testKafka,
  uniquePrefix,
  type TestDatabase,
} from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { createDeliveryStatusConsumer } from '../src/entry-points/kafka/delivery-status-consumer';
import { startTestAccounts, strongPassword, uniqueEmail, type TestAccounts } from './support/accounts-app';

// The original endpoint's messages, word for word (old clients compare them): written out here rather
// than imported from the source, so that a change to the source's text fails this test.
const MESSAGE_SENT = 'Registration successful! Please check your email for confirmation code.';
const MESSAGE_NOT_SENT = 'Registration successful! Email confirmation will be sent shortly.';

/** Issue 13: the original response fields, an honest status during a mail outage, no wait on a known outage. */
describe('register and /email/status while mail can or cannot go out', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;
  let consumer: ReturnType<typeof createDeliveryStatusConsumer>;
  let producer: Producer;
  const prefix = uniquePrefix('acc-outage');
  const topic = topicNames(prefix).mailDeliveryStatus;

  beforeAll(async () => {
    db = await createTestDatabase();
    accounts = startTestAccounts({
      databaseUrl: db.url,
      env: { KAFKA_TOPIC_PREFIX: prefix, RESEND_COOLDOWN_S: '600', REGISTER_WAIT_MS: '3000' },
    });
    const kafka = createKafka({
      brokers: testBrokers(),
      clientId: 'accounts-outage-test',
      logger: accounts.deps.logger,
    });
    consumer = createDeliveryStatusConsumer({ ...accounts.deps, kafka, admin: kafka.admin(), topicPrefix: prefix });
    await consumer.start();
    producer = testKafka('outage-producer').producer();
    await producer.connect();
    await waitFor(() => consumer.isRunning(), { timeoutMs: 30_000, message: 'delivery-status consumer did not start' });
  });
  afterAll(async () => {
    await producer.disconnect();
    await consumer.stop();
    await accounts.close();
    await db.drop();
  });

  type User = { token: string; userId: string; requestId: string; body: Record<string, unknown> };
  const register = async (headers: Record<string, string> = {}): Promise<User> => {
    const res = await accounts.http
      .post('/api/v1/usr/register')
      .set(headers)
      .send({ email: uniqueEmail('outage'), password: strongPassword });
    expect(res.status).toBe(201);
    return {
      token: res.body.access_token,
      userId: res.body.user_data.id,
      requestId: res.body.email_confirmation.request_id,
      body: res.body,
    };
  };
  const statusOf = async (u: Pick<User, 'token'>) =>
    (await accounts.http.get('/api/v1/usr/email/status').set('Authorization', `Bearer ${u.token}`)).body;
  const publish = async (u: Pick<User, 'userId' | 'requestId'>, p: Partial<MailDeliveryStatusPayload>) => {
    const envelope = buildEnvelope({
      type: EVENT_TYPE.mailDeliveryStatus,
      aggregateType: 'user',
      aggregateId: u.userId,
      payload: { request_id: u.requestId, user_id: u.userId, status: 'sent', attempt: 1, error_class: null, ...p },
    });
    await producer.send({
      topic,
      messages: [{ key: u.userId, value: JSON.stringify(envelope), headers: envelopeHeaders(envelope) }],
    });
  };
  /** How many times the register wait read the request's status (0: it did not wait at all). */
  const countStatusReads = () => {
    const spy = jest.spyOn(accounts.deps.pool, 'query');
    return {
      reads: () =>
        spy.mock.calls.filter(([q]) =>
          String(typeof q === 'string' ? q : (q as { text?: string }).text).includes(
            'FROM mail_delivery_status WHERE request_id',
          ),
        ).length,
      restore: () => spy.mockRestore(),
    };
  };

  test(
    'when the mail is sent within REGISTER_WAIT_MS (no Prefer header), then the original success message and ' +
      'no email_info',
    async () => {
      const email = uniqueEmail('sent');
      const marker = (async () => {
        for (let i = 0; i < 200; i++) {
          const { rowCount } = await db.pool.query(
            `UPDATE mail_delivery_status m SET status = 'sent', attempt = 1 FROM users u WHERE u.id = m.user_id AND lower(u.email) = lower($1)`,
            [email],
          );
          if (rowCount) return;
          await new Promise((r) => setTimeout(r, 25));
        }
      })();
      const res = await accounts.http.post('/api/v1/usr/register').send({ email, password: strongPassword });
      await marker;
      expect(res.status).toBe(201);
      expect(res.headers['preference-applied']).toBeUndefined();
      expect(res.body).toMatchObject({
        email_confirmation_sent: true,
        email_confirmation: { status: 'sent' },
        message: MESSAGE_SENT,
      });
      expect(res.body.email_info).toBeUndefined();
    },
  );

  test('when the mail is not sent in time, then the original "will be sent shortly" message and email_info with the resend rules\' answer', async () => {
    const u = await register({ Prefer: 'wait=0' });
    expect(u.body).toMatchObject({ email_confirmation_sent: false, message: MESSAGE_NOT_SENT });
    expect(u.body.email_info).toEqual({
      email_sent: false,
      error: null,
      can_resend: false,
      status: 'queued',
      retry_after_s: expect.any(Number),
    });
    expect((u.body.email_info as { retry_after_s: number }).retry_after_s).toBeGreaterThan(590);
  });

  test(
    'when every provider is open, then /email/status says deferred / circuit_open with the next attempt, a ' +
      'message and a lifted cooldown',
    async () => {
      const u = await register({ Prefer: 'wait=0' });
      const next = new Date(Date.now() + 60_000);
      await publish(u, {
        status: 'deferred',
        attempt: 0,
        error_class: 'circuit_open',
        next_attempt_at: next.toISOString(),
      });
      const status = await waitFor(
        async () => {
          const s = await statusOf(u);
          return s.last_request?.status === 'deferred' ? s : undefined;
        },
        { timeoutMs: 15_000, message: 'deferred status consumed' },
      );
      expect(status.last_request).toMatchObject({
        status: 'deferred',
        error_class: 'circuit_open',
        attempts: 0,
        next_attempt_at: next.toISOString(),
      });
      expect(status.last_request.message).toBe(
        `The mail server is not responding; we will retry automatically at ${next.toISOString().slice(11, 16)} UTC.`,
      );
      expect(status.can_resend).toBe(true);
    },
  );

  test(
    'when an outage is known from a circuit_open status, then a registration does not wait at all ' +
      '(REGISTER_WAIT_MS, or Prefer) and says why',
    async () => {
      const other = await register({ Prefer: 'wait=0' });
      await publish(other, {
        status: 'deferred',
        attempt: 0,
        error_class: 'circuit_open',
        next_attempt_at: new Date(Date.now() + 60_000).toISOString(),
      });
      await waitFor(() => accounts.deps.mailOutage.known(), { timeoutMs: 15_000, message: 'outage learnt' });

      const reads = countStatusReads();
      try {
        const byDefault = await register();
        const preferred = await register({ Prefer: 'wait=10' });
        expect(reads.reads()).toBe(0);
        for (const u of [byDefault, preferred]) {
          expect(u.body).toMatchObject({
            email_confirmation_sent: false,
            message: MESSAGE_NOT_SENT,
            email_info: { email_sent: false, status: 'queued' },
          });
          expect((u.body.email_info as { error: string }).error).toMatch(
            /^The mail server is not responding; we will retry automatically at \d\d:\d\d UTC\.$/,
          );
        }
      } finally {
        reads.restore();
      }

      // A sent status ends the known outage: the next registration waits (and reads its status) again.
      await publish(other, { status: 'sent', attempt: 1, error_class: null, provider: 'primary' });
      await waitFor(() => !accounts.deps.mailOutage.known(), { timeoutMs: 15_000, message: 'outage over' });
      const again = countStatusReads();
      try {
        await register({ Prefer: 'wait=1' });
        expect(again.reads()).toBeGreaterThan(0);
      } finally {
        again.restore();
      }
      expect((await statusOf(other)).last_request).toMatchObject({
        status: 'sent',
        provider: 'primary',
        message: expect.stringMatching(/has been sent/),
      });
    },
  );
});

describe('CORS for browser clients (CORS_ORIGINS)', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;
  const ALLOWED = 'https://app.example.com';

  beforeAll(async () => {
    db = await createTestDatabase();
    accounts = startTestAccounts({ databaseUrl: db.url, env: { CORS_ORIGINS: `${ALLOWED}, http://localhost:5173` } });
  });
  afterAll(async () => {
    await accounts.close();
    await db.drop();
  });

  const preflight = (origin: string, path = '/api/v1/usr/register') =>
    accounts.http
      .options(path)
      .set('Origin', origin)
      .set('Access-Control-Request-Method', 'POST')
      .set('Access-Control-Request-Headers', 'content-type, authorization, prefer');

  test('when an allowed origin sends a preflight, then 204 with the methods and headers the API uses', async () => {
    const res = await preflight(ALLOWED);
    expect(res.status).toBe(204);
    expect(res.headers['access-control-allow-origin']).toBe(ALLOWED);
    expect(res.headers['access-control-allow-methods']).toBe('GET, POST, OPTIONS');
    expect(res.headers['access-control-allow-headers']).toBe('authorization, content-type, prefer');
    expect(res.headers.vary).toMatch(/Origin/);
  });

  test('when an allowed origin registers, then the response allows it and exposes Retry-After', async () => {
    const res = await accounts.http
      .post('/api/v1/usr/register')
      .set('Origin', 'http://localhost:5173')
      .send({ email: uniqueEmail('cors'), password: strongPassword });
    expect(res.status).toBe(201);
    expect(res.headers['access-control-allow-origin']).toBe('http://localhost:5173');
    expect(res.headers['access-control-expose-headers']).toBe('Retry-After');
  });

  test('when another origin sends a preflight or a request, then no allow header is sent', async () => {
    const pre = await preflight('https://evil.example.net');
    expect(pre.headers['access-control-allow-origin']).toBeUndefined();
    expect(pre.headers['access-control-allow-methods']).toBeUndefined();
    const res = await accounts.http
      .post('/api/v1/usr/register')
      .set('Origin', 'https://app.example.com.evil.net')
      .send({ email: uniqueEmail('cors2'), password: strongPassword });
    expect(res.headers['access-control-allow-origin']).toBeUndefined();
  });
});
