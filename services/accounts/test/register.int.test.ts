import { mailRequestedPayload, userRegisteredPayload } from '@shared/events';
import { createKafka } from '@shared/kafka';
import { Registry } from 'prom-client';
import request from 'supertest';
import { createRegisterUser } from '../src/domain/register-user';
import { createAccountsApp } from '../src/entry-points/http/app';
import { createDeliveryStatusConsumer } from '../src/entry-points/kafka/delivery-status-consumer';
import { createTestDatabase } from '../../../test/support/infra';
import { freePort } from '../../../test/support/ports';
import { waitFor } from '../../../test/support/wait-for';
import {
  codeOf,
  metricValue,
  startTestAccounts,
  strongPassword,
  uniqueEmail,
  withTestAccounts,
} from './support/accounts-app';

describe('POST /api/v1/usr/register', () => {
  const { db, accounts } = withTestAccounts();

  const register = (body: object, headers: Record<string, string> = {}) =>
    accounts.http.post('/api/v1/usr/register').set(headers).send(body);

  test(
    'when the body is valid, returns 201 with tokens and user data, and commits user, confirmation, delivery ' +
      'status and both outbox events',
    async () => {
      const email = uniqueEmail('Alice');

      const res = await register({ email, password: strongPassword, first_name: 'Alice', last_name: 'Liddell' });

      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        refresh_token: expect.any(String),
        access_token: expect.any(String),
        user_data: {
          id: expect.any(String),
          email,
          first_name: 'Alice',
          last_name: 'Liddell',
          email_confirmed: false,
          referral_code: expect.stringMatching(/^[0-9A-Z]{10}$/),
          referred_by: null,
        },
        email_confirmation_sent: false,
        email_confirmation: { request_id: expect.any(String), status: 'queued' },
        message: 'Registration successful! Email confirmation will be sent shortly.',
        email_info: { email_sent: false, error: null, can_resend: false, status: 'queued', retry_after_s: 60 },
      });
      const userId: string = res.body.user_data.id;
      const requestId: string = res.body.email_confirmation.request_id;
      const user = await db.pool.query('SELECT email, password_hash FROM users WHERE id = $1', [userId]);
      expect(user.rows[0].email).toBe(email);
      expect(user.rows[0].password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
      const confirmation = await db.pool.query(
        'SELECT user_id, code_hash, state FROM email_confirmations WHERE request_id = $1',
        [requestId],
      );
      expect(confirmation.rows).toEqual([{ user_id: userId, code_hash: expect.any(String), state: 'pending' }]);
      const code = await codeOf(db.pool, requestId);
      expect(code).toMatch(/^\d{6}$/);
      expect(confirmation.rows[0].code_hash).not.toContain(code);
      const status = await db.pool.query(
        'SELECT user_id, status, attempt FROM mail_delivery_status WHERE request_id = $1',
        [requestId],
      );
      expect(status.rows).toEqual([{ user_id: userId, status: 'queued', attempt: 0 }]);
      const outbox = await db.pool.query(
        'SELECT topic, key, type, version, aggregate_type, payload, headers, event_id FROM outbox WHERE key = $1 ORDER BY id',
        [userId],
      );
      expect(outbox.rows.map((r) => [r.topic, r.type])).toEqual(
        expect.arrayContaining([
          ['mail.requests', 'mail.requested'],
          ['accounts.user-events', 'user.registered'],
        ]),
      );
      expect(outbox.rows).toHaveLength(2);
      for (const row of outbox.rows) {
        expect(row).toMatchObject({
          version: 1,
          aggregate_type: 'user',
          headers: { id: row.event_id, type: row.type },
        });
      }
      const mail = mailRequestedPayload.parse(outbox.rows.find((r) => r.type === 'mail.requested').payload);
      expect(mail).toMatchObject({
        request_id: requestId,
        user_id: userId,
        to: email,
        template: 'email_confirmation',
        vars: { first_name: 'Alice', last_name: 'Liddell' },
      });
      // The code is sealed under MAIL_PAYLOAD_KEY (opened here with the test key): never in clear in the outbox.
      expect(mail.vars.code).toMatch(/^v1\.[0-9a-f]{8}\./);
      expect(JSON.stringify(outbox.rows)).not.toContain(code);
      const registered = userRegisteredPayload.parse(outbox.rows.find((r) => r.type === 'user.registered').payload);
      expect(registered).toMatchObject({
        user_id: userId,
        email,
        referral_code: res.body.user_data.referral_code,
        referred_by: null,
      });
      expect(
        await metricValue(accounts.registry, 'accounts_registrations_total', { result: 'created' }),
      ).toBeGreaterThanOrEqual(1);
    },
  );

  test('when referral_code names a user, links the affiliate and reports referred_by', async () => {
    const referrer = await register({ email: uniqueEmail('referrer'), password: strongPassword });

    const res = await register({
      email: uniqueEmail('referred'),
      password: strongPassword,
      referral_code: referrer.body.user_data.referral_code,
    });

    expect(res.status).toBe(201);
    expect(res.body.user_data.referred_by).toBe(referrer.body.user_data.id);
    const link = await db.pool.query('SELECT referrer_user_id FROM affiliates WHERE referred_user_id = $1', [
      res.body.user_data.id,
    ]);
    expect(link.rows).toEqual([{ referrer_user_id: referrer.body.user_data.id }]);
  });

  test('when referral_code is unknown, returns 400 invalid_referral_code and writes nothing', async () => {
    const email = uniqueEmail('badref');

    const res = await register({ email, password: strongPassword, referral_code: 'NOSUCHCODE' });

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('invalid_referral_code');
    const users = await db.pool.query('SELECT 1 FROM users WHERE lower(email) = lower($1)', [email]);
    expect(users.rowCount).toBe(0);
  });

  test.each([
    ['a bad email', { email: 'not-an-email', password: strongPassword }, 'email'],
    ['a password under 8 characters', { email: 'short@example.com', password: 'Ab1!x' }, 'password'],
    ['a common password', { email: 'common@example.com', password: 'Password123' }, 'password'],
    ['a missing password', { email: 'missing@example.com' }, 'password'],
  ])('when the body has %s, returns 400 validation_failed naming the field', async (_label, body, field) => {
    const res = await register(body);

    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe('validation_failed');
    expect(res.body.error.details).toEqual(expect.arrayContaining([expect.objectContaining({ path: field })]));
    expect(JSON.stringify(res.body)).not.toContain(strongPassword);
  });

  test('when the email is taken in another case, returns 409 email_taken', async () => {
    const email = uniqueEmail('taken');
    await register({ email, password: strongPassword });

    const res = await register({ email: email.toUpperCase(), password: strongPassword });

    expect(res.status).toBe(409);
    expect(res.body).toEqual({ error: { code: 'email_taken', message: expect.any(String) } });
    expect(
      await metricValue(accounts.registry, 'accounts_registrations_total', { result: 'email_taken' }),
    ).toBeGreaterThanOrEqual(1);
  });

  test(
    'when 20 clients register one email at once, exactly ' + 'one gets 201 and nineteen get 409 email_taken',
    async () => {
      const email = uniqueEmail('race');

      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          register({ email: i % 2 ? email : email.toUpperCase(), password: strongPassword }),
        ),
      );

      const statuses = responses.map((r) => r.status).sort();
      expect(statuses.filter((s) => s === 201)).toHaveLength(1);
      expect(statuses.filter((s) => s === 409)).toHaveLength(19);
      expect(responses.filter((r) => r.status === 409).every((r) => r.body.error.code === 'email_taken')).toBe(true);
      const users = await db.pool.query('SELECT 1 FROM users WHERE lower(email) = lower($1)', [email]);
      expect(users.rowCount).toBe(1);
    },
  );

  test(
    'when the outbox insert fails after the user insert, nothing is left behind and the client gets a JSON 500 ' +
      'without details',
    async () => {
      const email = uniqueEmail('atomic');
      await db.pool.query(
        `CREATE FUNCTION fail_outbox() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected outbox failure'; END $$`,
      );
      await db.pool.query(
        `CREATE TRIGGER fail_outbox BEFORE INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION fail_outbox()`,
      );
      try {
        const res = await register({ email, password: strongPassword, first_name: 'Atomic' });

        expect(res.status).toBe(500);
        expect(res.headers['content-type']).toMatch(/application\/json/);
        expect(res.body).toEqual({ error: { code: 'internal', message: 'internal error' } });
        expect(JSON.stringify(res.body)).not.toContain('injected');
      } finally {
        await db.pool.query('DROP TRIGGER fail_outbox ON outbox; DROP FUNCTION fail_outbox()');
      }
      const leftovers = await db.pool.query(
        `SELECT (SELECT count(*) FROM users WHERE lower(email) = lower($1))::int AS users,
              (SELECT count(*) FROM email_confirmations ec LEFT JOIN users u ON u.id = ec.user_id WHERE u.id IS NULL)::int AS orphan_confirmations,
              (SELECT count(*) FROM mail_delivery_status m LEFT JOIN users u ON u.id = m.user_id WHERE u.id IS NULL)::int AS orphan_statuses,
              (SELECT count(*) FROM outbox WHERE payload->>'email' = $1 OR payload->>'to' = $1)::int AS outbox,
              (SELECT count(*) FROM refresh_tokens r LEFT JOIN users u ON u.id = r.user_id WHERE u.id IS NULL)::int AS orphan_tokens`,
        [email],
      );
      expect(leftovers.rows[0]).toEqual({
        users: 0,
        orphan_confirmations: 0,
        orphan_statuses: 0,
        outbox: 0,
        orphan_tokens: 0,
      });
    },
  );

  test(
    'when the affiliate insert fails with a referral, no ' + 'user, affiliate, confirmation or outbox row remains',
    async () => {
      const referrer = await register({ email: uniqueEmail('ref2'), password: strongPassword });
      const email = uniqueEmail('atomic2');
      await db.pool.query(
        `CREATE FUNCTION fail_affiliate() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'injected'; END $$`,
      );
      await db.pool.query(
        `CREATE TRIGGER fail_affiliate BEFORE INSERT ON affiliates FOR EACH ROW EXECUTE FUNCTION fail_affiliate()`,
      );
      try {
        const res = await register({
          email,
          password: strongPassword,
          referral_code: referrer.body.user_data.referral_code,
        });
        expect(res.status).toBe(500);
      } finally {
        await db.pool.query('DROP TRIGGER fail_affiliate ON affiliates; DROP FUNCTION fail_affiliate()');
      }
      const rows = await db.pool.query(
        `SELECT (SELECT count(*) FROM users WHERE lower(email) = lower($1))::int AS users,
              (SELECT count(*) FROM affiliates WHERE referrer_user_id = $2)::int AS affiliates,
              (SELECT count(*) FROM outbox WHERE payload->>'to' = $1 OR payload->>'email' = $1)::int AS outbox`,
        [email, referrer.body.user_data.id],
      );
      expect(rows.rows[0]).toEqual({ users: 0, affiliates: 0, outbox: 0 });
    },
  );

  test(
    'when the generated referral code is already taken, ' + 'registration retries with a fresh code and succeeds',
    async () => {
      const existing = await register({ email: uniqueEmail('holder'), password: strongPassword });
      const codes = [existing.body.user_data.referral_code as string, 'FRESHCODE1'];
      const registerUser = createRegisterUser({
        ...accounts.deps,
        commonPasswords: new Set(),
        newReferralCode: () => codes.shift() ?? 'FRESHCODE2',
      });

      const registration = await registerUser({ email: uniqueEmail('collide'), password: strongPassword });

      expect(registration.user.referral_code).toBe('FRESHCODE1');
      const row = await db.pool.query('SELECT referral_code FROM users WHERE id = $1', [registration.user.id]);
      expect(row.rows[0].referral_code).toBe('FRESHCODE1');
    },
  );

  test(
    'when a request outlives the request timeout, the ' + 'client gets a JSON 503 timeout instead of hanging',
    async () => {
      const slow = startTestAccounts({ databaseUrl: db.url });
      const app = createAccountsApp({
        ...slow.deps,
        commonPasswords: new Set(),
        registry: new Registry(),
        requestTimeoutMs: 300,
      });
      try {
        const res = await request(app)
          .post('/api/v1/usr/register')
          .set('Prefer', 'wait=5')
          .send({ email: uniqueEmail('slow'), password: strongPassword });

        expect(res.status).toBe(503);
        expect(res.body).toEqual({ error: { code: 'timeout', message: expect.any(String) } });
      } finally {
        await slow.close();
      }
    },
  );

  describe('Prefer: wait', () => {
    test(
      'when the mail is sent within the wait, answers email_confirmation_sent true, status sent and ' +
        'Preference-Applied',
      async () => {
        const email = uniqueEmail('wait');
        // Plays the consumer: marks the request sent as soon as it is committed.
        const marker = waitFor(
          async () =>
            (
              await db.pool.query(
                `UPDATE mail_delivery_status m SET status = 'sent', attempt = 1 FROM users u WHERE u.id = m.user_id AND lower(u.email) = lower($1)`,
                [email],
              )
            ).rowCount,
          { timeoutMs: 10_000, intervalMs: 25, message: 'the registration committed its queued status' },
        );

        const res = await register({ email, password: strongPassword }, { Prefer: 'wait=10' });
        await marker;

        expect(res.status).toBe(201);
        expect(res.headers['preference-applied']).toBe('wait=10');
        expect(res.body.email_confirmation_sent).toBe(true);
        expect(res.body.email_confirmation.status).toBe('sent');
      },
    );

    test('when nothing is delivered within the wait, answers queued and reports the wait it applied', async () => {
      const res = await register({ email: uniqueEmail('nowait'), password: strongPassword }, { Prefer: 'wait=1' });

      expect(res.status).toBe(201);
      expect(res.headers['preference-applied']).toBe('wait=1');
      expect(res.body.email_confirmation_sent).toBe(false);
      expect(res.body.email_confirmation.status).toBe('queued');
    });

    test('when the preference is malformed, it is ignored without waiting or failing', async () => {
      const res = await register(
        { email: uniqueEmail('malformed'), password: strongPassword },
        { Prefer: 'wait=soon' },
      );

      expect(res.status).toBe(201);
      expect(res.headers['preference-applied']).toBeUndefined();
      expect(res.body.email_confirmation.status).toBe('queued');
    });
  });
});

describe('registration when dependencies are down', () => {
  test('when PostgreSQL is unreachable, returns 503 unavailable in the contract shape', async () => {
    const accounts = startTestAccounts({ databaseUrl: `postgres://postgres@127.0.0.1:${await freePort()}/nowhere` });
    try {
      const res = await accounts.http
        .post('/api/v1/usr/register')
        .send({ email: uniqueEmail('down'), password: strongPassword });

      expect(res.status).toBe(503);
      expect(res.body).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
      expect(await metricValue(accounts.registry, 'accounts_registrations_total', { result: 'unavailable' })).toBe(1);
    } finally {
      await accounts.close();
    }
  });

  test(
    'when the Kafka broker is unreachable and no mailer runs, registration still answers 201 and the outbox ' +
      'holds both events',
    async () => {
      const db = await createTestDatabase();
      const accounts = startTestAccounts({
        databaseUrl: db.url,
        env: { KAFKA_BROKERS: `127.0.0.1:${await freePort()}` },
      });
      // The consumer keeps retrying its broker in the background, as in production.
      const kafka = createKafka({
        brokers: accounts.config.KAFKA_BROKERS,
        clientId: 'accounts-test',
        logger: accounts.deps.logger,
        connectionTimeout: 200,
      });
      const consumer = createDeliveryStatusConsumer({
        ...accounts.deps,
        kafka,
        admin: kafka.admin(),
        topicPrefix: 'down.',
      });
      await consumer.start();
      try {
        const res = await accounts.http
          .post('/api/v1/usr/register')
          .send({ email: uniqueEmail('nokafka'), password: strongPassword });

        expect(res.status).toBe(201);
        const outbox = await db.pool.query('SELECT type FROM outbox WHERE key = $1 ORDER BY type', [
          res.body.user_data.id,
        ]);
        expect(outbox.rows).toEqual([{ type: 'mail.requested' }, { type: 'user.registered' }]);
        expect(consumer.isRunning()).toBe(false);
      } finally {
        await consumer.stop();
        await accounts.close();
        await db.drop();
      }
    },
  );
});
