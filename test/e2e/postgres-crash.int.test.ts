import pg from 'pg';
import { migrate } from '../../scripts/migrate';
import { testBrokers, uniquePrefix } from '../support/infra';
import { startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres';
import { startSystem, type System } from '../support/system';
import { waitFor } from '../support/wait-for';

/**
 * Guarantee 8 with real processes on a PostgreSQL of the test's own, whose postmaster is SIGKILLed and
 * restarted (crash recovery on the same data directory): accounts answers 503 `unavailable` during the
 * outage — never a 500, never a request left unanswered — writes nothing half, and after the restart
 * the relay LISTENs again, the mailer consumes again and every 201 gets its mail. Each service's
 * /readyz (accounts' on OPS_PORT) says 503 while PostgreSQL is down and 200 once it is back.
 */
describe('a PostgreSQL crash', () => {
  let server: PrivatePostgres;
  let system: System;
  let pool: pg.Pool;

  beforeAll(async () => {
    server = await startPrivatePostgres();
    await migrate({ databaseUrl: server.url() });
    pool = new pg.Pool({ connectionString: server.url(), max: 2 });
    pool.on('error', () => undefined);
    system = await startSystem({
      databaseUrl: server.url(),
      brokers: testBrokers().join(','),
      topicPrefix: uniquePrefix('pgcrash'),
      counts: { accounts: 1, relay: 1, mailer: 1 },
      ...(process.env.PGCRASH_DEBUG
        ? { onLine: (label: string, line: string) => process.stderr.write(`${label} ${line}\n`) }
        : {}),
      env: {
        LOG_LEVEL: 'warn',
        DB_CONNECT_TIMEOUT_MS: '2000',
        RELAY_POLL_INTERVAL_MS: '200',
        RELAY_RETRY_MAX_MS: '1000',
        MAIL_RETRY_BASE_MS: '200',
        MAIL_RETRY_MAX_MS: '1000',
      },
    });
  }, 180_000);

  afterAll(async () => {
    await system?.stop();
    await pool?.end();
    await server?.destroy();
  }, 60_000);

  const register = async (email: string) => {
    const api = system.accountsUrls()[0] ?? '';
    // Longer than the server's own request timeout (25 s): a request still unanswered here hung.
    const res = await fetch(`${api}/api/v1/usr/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email, password: 'correct horse battery staple' }),
      signal: AbortSignal.timeout(30_000),
    });
    return { status: res.status, body: (await res.json()) as { error?: { code: string } } };
  };
  const mailsTo = (email: string) => system.smtp.messages.filter((m) => m.to.includes(email)).length;
  const listening = async () =>
    (await pool.query(`SELECT 1 FROM pg_stat_activity WHERE query = 'LISTEN outbox'`)).rowCount === 1;

  it('when the postmaster is SIGKILLed, registration answers 503 unavailable and writes nothing; after the restart every 201 gets exactly one mail', async () => {
    const stamp = Date.now();
    const before = Array.from({ length: 3 }, (_, i) => `before.${stamp}.${i}@example.test`);
    for (const email of before) expect((await register(email)).status).toBe(201);
    await waitFor(() => before.every((e) => mailsTo(e) === 1), { timeoutMs: 60_000, message: 'mail before the crash' });
    await waitFor(listening, { timeoutMs: 30_000, message: 'the relay LISTENs before the crash' });

    await server.crash();
    const during = Array.from({ length: 3 }, (_, i) => `during.${stamp}.${i}@example.test`);
    const answers = [];
    for (const email of during) answers.push(await register(email));
    expect(answers).toEqual(
      during.map(() => ({ status: 503, body: { error: expect.objectContaining({ code: 'unavailable' }) } })),
    );

    await server.start();
    await waitFor(listening, { timeoutMs: 60_000, message: 'the relay LISTENs again after the restart' });
    // Nothing half-written: no user, confirmation or outbox row of a 503.
    const written = await pool.query(`SELECT count(*)::int AS n FROM users WHERE email = ANY($1)`, [during]);
    expect(written.rows[0]?.n).toBe(0);

    const after = Array.from({ length: 3 }, (_, i) => `after.${stamp}.${i}@example.test`);
    for (const email of after) {
      // The pool may hand out one connection that died with the old server: a retry is what a client does.
      const first = await register(email);
      const res = first.status === 503 ? await register(email) : first;
      expect(res.status).toBe(201);
    }
    await waitFor(() => after.every((e) => mailsTo(e) === 1), {
      timeoutMs: 90_000,
      message: 'mail after the restart (mailer resumed)',
    });
    expect([...before, ...after].map(mailsTo)).toEqual([...before, ...after].map(() => 1));
    expect(during.map(mailsTo)).toEqual(during.map(() => 0));
  }, 300_000);

  it('when the postmaster is SIGKILLed with mail in flight — outbox rows nobody published yet, mail requests waiting on a stalled SMTP — then after the restart each 201 gets exactly one mail', async () => {
    const stamp = Date.now();
    const count = async (sql: string, values: unknown[]) =>
      (await pool.query<{ n: number }>(sql, values)).rows[0]?.n ?? 0;
    const usersOf = `SELECT id FROM users WHERE email = ANY($1)`;

    // Requests the mailer holds in its table: SMTP stalls, so they wait there (deferred) across the crash.
    await system.smtp.setFault({ mode: 'stall-connect' });
    const held = Array.from({ length: 3 }, (_, i) => `held.${stamp}.${i}@example.test`);
    for (const email of held) expect((await register(email)).status).toBe(201);
    await waitFor(
      async () =>
        (await count(`SELECT count(*)::int AS n FROM mailer_requests WHERE user_id IN (${usersOf})`, [held])) === 3,
      { timeoutMs: 60_000, message: 'the mailer recorded the held requests' },
    );

    // Outbox rows nobody publishes: the relay is down, so they are committed and waiting at the crash.
    await system.kill('relay', 0);
    const unpublished = Array.from({ length: 3 }, (_, i) => `unpublished.${stamp}.${i}@example.test`);
    for (const email of unpublished) expect((await register(email)).status).toBe(201);
    expect(
      await count(
        `SELECT count(*)::int AS n FROM outbox WHERE key IN (SELECT id::text FROM users WHERE email = ANY($1))`,
        [unpublished],
      ),
    ).toBeGreaterThanOrEqual(3);

    await server.crash();
    await system.smtp.setFault({ mode: 'healthy' });
    await server.start();
    await system.restart('relay', 0);

    const all = [...held, ...unpublished];
    await waitFor(() => all.every((e) => mailsTo(e) >= 1), {
      timeoutMs: 120_000,
      message: 'every mail in flight at the crash delivered after the restart',
    });
    expect(all.map(mailsTo)).toEqual(all.map(() => 1));
    expect(await count(`SELECT count(*)::int AS n FROM outbox`, [])).toBe(0);
  }, 300_000);

  it(
    "when the postmaster is down, accounts', the relay's and the mailer's /readyz answer 503 naming postgres; " +
      'after the restart each answers 200 again',
    async () => {
      // Each service's checks in the order it runs them; only postgres fails (the broker is up).
      const checksOf = { accounts: ['postgres'], relay: ['postgres', 'kafka'], mailer: ['postgres', 'kafka'] };
      const readiness = () =>
        Promise.all(
          system.instances.map(async ({ name, opsUrl }) => {
            // Bounded: a readiness probe that hangs is as bad as one that lies.
            const res = await fetch(`${opsUrl}/readyz`, { signal: AbortSignal.timeout(10_000) });
            return { service: name, status: res.status, body: (await res.json()) as unknown };
          }),
        );
      const expected = (ready: boolean) =>
        system.instances.map(({ name }) => ({
          service: name,
          status: ready ? 200 : 503,
          body: {
            status: ready ? 'ready' : 'not_ready',
            checks: checksOf[name].map((check) => ({ name: check, ok: ready || check !== 'postgres' })),
          },
        }));
      const allReady = (when: string) =>
        waitFor(async () => (await readiness()).every((r) => r.status === 200), {
          timeoutMs: 60_000,
          message: `every /readyz answers 200 ${when}`,
        });
      await allReady('before the crash');

      await server.crash();
      expect(await readiness()).toEqual(expected(false));

      await server.start();
      await allReady('after the restart');
      expect(await readiness()).toEqual(expected(true));
    },
    120_000,
  );
});
