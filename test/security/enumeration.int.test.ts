import { createTestDatabase, type TestDatabase } from '../support/infra';
import { waitFor } from '../support/wait-for';
import {
  startTestAccounts,
  strongPassword,
  uniqueEmail,
  type TestAccounts,
} from '../../services/accounts/test/support/accounts-app';

/**
 * Account enumeration: an anonymous caller must not learn whether an address has an account, from
 * the status, the body or the time of the answer. Status and body are asserted here; the time is
 * measured (medians over ROUNDS interleaved calls each, printed) but not asserted: a timing bound on a
 * shared machine is a benchmark's job, not a test's (the project's rule).
 */
const ROUNDS = 40;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
};

type Timed = { status: number; body: unknown; ms: number };

/** Interleaves calls for the two addresses; `settle` runs after each call, outside the measured time. */
async function measure(
  call: (email: string) => Promise<Omit<Timed, 'ms'>>,
  existing: string,
  unknown: () => string,
  settle: () => Promise<void>,
) {
  const samples = { existing: [] as Timed[], unknown: [] as Timed[] };
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['existing', 'unknown'] as const) : (['unknown', 'existing'] as const);
    for (const side of order) {
      const started = process.hrtime.bigint();
      const res = await call(side === 'existing' ? existing : unknown());
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      samples[side].push({ ...res, ms });
      await settle();
    }
  }
  const existingMedian = median(samples.existing.map((s) => s.ms));
  const unknownMedian = median(samples.unknown.map((s) => s.ms));
  return {
    samples,
    existingMedian,
    unknownMedian,
    difference: Math.abs(existingMedian - unknownMedian),
    slower: Math.max(existingMedian, unknownMedian),
  };
}

/** Replaces the values that differ per call anyway (a fresh request id) with their shape. */
const shapeOf = (body: unknown): unknown =>
  JSON.parse(JSON.stringify(body), (_k, v: unknown) =>
    typeof v === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(v) ? '<uuid>' : v,
  );

describe('account enumeration: anonymous resend and login answer alike for existing and unknown addresses', () => {
  let db: TestDatabase;
  let accounts: TestAccounts;
  let existing: string;

  beforeAll(async () => {
    db = await createTestDatabase();
    // No cooldown and a high cap: every anonymous resend of the real account commits a new request,
    // the most expensive path there is; no login throttle, so every login verifies a hash.
    accounts = startTestAccounts({
      databaseUrl: db.url,
      env: { RESEND_COOLDOWN_S: '0', RESEND_MAX_PER_HOUR: '100', LOGIN_MAX_FAILURES: '1000' },
    });
    existing = uniqueEmail('enum');
    expect(
      (await accounts.http.post('/api/v1/usr/register').send({ email: existing, password: strongPassword })).status,
    ).toBe(201);
  });
  afterAll(async () => {
    await accounts.close();
    await db.drop();
  });

  const resendTotal = async () =>
    ((await accounts.registry.getSingleMetric('accounts_resend_requests_total')?.get())?.values ?? []).reduce(
      (sum, v) => sum + v.value,
      0,
    );

  test(`anonymous resend: same 202, same body shape over ${ROUNDS} calls each, and mail only for the real account`, async () => {
    const mailsBefore = (await db.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE type = 'mail.requested'`))
      .rows[0].n as number;
    let settled = await resendTotal();

    const result = await measure(
      async (email) => {
        const res = await accounts.http.post('/api/v1/usr/email/resend').send({ email });
        return { status: res.status, body: res.body as unknown };
      },
      existing,
      () => uniqueEmail('nobody'),
      // The work runs after the answer: wait for it, so one call's commit never slows the next call.
      async () => {
        settled += 1;
        await waitFor(async () => (await resendTotal()) >= settled, {
          timeoutMs: 10_000,
          message: 'resend work not settled',
        });
      },
    );

    console.log(
      `[enumeration] anonymous resend: ${ROUNDS}+${ROUNDS} calls, median existing ${result.existingMedian.toFixed(2)} ms, unknown ${result.unknownMedian.toFixed(2)} ms, difference ${result.difference.toFixed(2)} ms`,
    );
    for (const s of [...result.samples.existing, ...result.samples.unknown]) expect(s.status).toBe(202);
    const shapes = new Set(
      [...result.samples.existing, ...result.samples.unknown].map((s) => JSON.stringify(shapeOf(s.body))),
    );
    expect([...shapes]).toEqual([
      JSON.stringify({ email_confirmation: { request_id: '<uuid>', status: 'queued' }, retry_after_s: 0 }),
    ]);
    const mailsAfter = (await db.pool.query(`SELECT count(*)::int AS n FROM outbox WHERE type = 'mail.requested'`))
      .rows[0].n as number;
    expect(mailsAfter - mailsBefore).toBe(ROUNDS);
  });

  test(`login: same 401 invalid_credentials body over ${ROUNDS} calls each`, async () => {
    const result = await measure(
      async (email) => {
        const res = await accounts.http.post('/api/v1/usr/login').send({ email, password: 'not the password' });
        return { status: res.status, body: res.body as unknown };
      },
      existing,
      () => uniqueEmail('nobody'),
      async () => undefined,
    );

    console.log(
      `[enumeration] login: ${ROUNDS}+${ROUNDS} calls, median existing ${result.existingMedian.toFixed(2)} ms, unknown ${result.unknownMedian.toFixed(2)} ms, difference ${result.difference.toFixed(2)} ms`,
    );
    const bodies = new Set(
      [...result.samples.existing, ...result.samples.unknown].map((s) => `${s.status} ${JSON.stringify(s.body)}`),
    );
    expect([...bodies]).toEqual([
      `401 ${JSON.stringify({ error: { code: 'invalid_credentials', message: 'email or password is wrong' } })}`,
    ]);
  });
});
