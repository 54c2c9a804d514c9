import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startSystem } from '../test/support/system';
import { startSmtpTestServer } from '../test/support/smtp-test-server';
import { startSyncBaseline } from './baseline/sync-register';
import { closedLoop, openLoop } from './load';
import { percentile, round, type Bench, type BenchRow } from './lib';

/**
 * Registration with SMTP healthy and with SMTP stalling, for this system (real processes: accounts,
 * relay, mailer, Kafka) and for the synchronous baseline (mail sent inside the request), same SMTP
 * timeout, same machine, same run. Plus register → SMTP-accepted latency of this system.
 */
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const SMTP_TIMEOUT_MS = Number(process.env.BENCH_SMTP_TIMEOUT_MS ?? 2000);
const STEADY_RATE = Number(process.env.BENCH_E2E_RATE ?? 50);

/**
 * Milliseconds from each user row's creation (the registration's commit) to SMTP accepting its mail,
 * for the users whose address starts with `label.`; waits up to 10 s for the last mails.
 */
async function acceptLatencies(
  databaseUrl: string,
  label: string,
  messages: { to: string[]; receivedAt: Date }[],
): Promise<number[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ email: string; created_at: Date }>(
      'SELECT email, created_at FROM users WHERE email LIKE $1',
      [`${label}.%`],
    );
    const createdAt = new Map(rows.map((t) => [t.email, t.created_at.getTime()]));
    const deadline = Date.now() + 10_000;
    const accepted = () => messages.filter((m) => createdAt.has(m.to[0] ?? ''));
    while (accepted().length < createdAt.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    return accepted().map((m) => m.receivedAt.getTime() - (createdAt.get(m.to[0] ?? '') ?? 0));
  } finally {
    await client.end();
  }
}

export const bench: Bench = {
  name: 'registration vs synchronous baseline',
  run: async (ctx) => {
    const durationMs = Math.max(3_000, Math.round(15_000 * ctx.scale));
    const rows: BenchRow[] = [];
    const tag = randomBytes(3).toString('hex');
    const body = (i: number, label: string) =>
      JSON.stringify({ email: `${label}.${tag}.${i}@example.test`, password: `bench-password-${i}` });
    const post = async (url: string, payload: string) => {
      const res = await fetch(`${url}/api/v1/usr/register`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: payload,
      });
      await res.arrayBuffer();
      return res.status === 201;
    };

    // ---- this system ----
    const db = await ctx.createDatabase();
    const system = await startSystem({
      databaseUrl: db.url,
      brokers: ctx.brokers.join(','),
      topicPrefix: ctx.uniquePrefix('e2e'),
      counts: { accounts: 1, relay: 1, mailer: 1 },
      env: {
        LOG_LEVEL: 'warn',
        SMTP_TIMEOUT_MS: String(SMTP_TIMEOUT_MS),
        BREAKER_RESET_TIMEOUT_MS: '5000',
        MAIL_RETRY_BASE_MS: '1000',
      },
    });
    const ours: Record<string, Awaited<ReturnType<typeof closedLoop>>> = {};
    try {
      const api = system.accountsUrls()[0] ?? '';
      // Warm-up: JIT, pools, the first Kafka metadata.
      await closedLoop({ concurrency: 4, durationMs: 2_000, request: (i) => post(api, body(i, 'warm')) });

      // A steady arrival rate below capacity: how long a registered user waits for the mail.
      ctx.log(`this system, ${STEADY_RATE} registrations/s (open loop)...`);
      const steadyLoad = await openLoop({
        ratePerSecond: STEADY_RATE,
        durationMs: Math.max(5_000, Math.round(10_000 * ctx.scale)),
        request: (i) => post(api, body(i, 'steady')),
      });
      const steady = await acceptLatencies(db.url, 'steady', system.smtp.messages);
      rows.push({
        benchmark: 'register → mail accepted',
        case: `this system at ${STEADY_RATE} registrations/s (open loop; user row commit -> SMTP accepted)`,
        metrics: {
          offered_per_s: STEADY_RATE,
          achieved_per_s: steadyLoad.per_s,
          register_p50_ms: steadyLoad.p50_ms,
          mails: steady.length,
          p50_ms: round(percentile(steady, 50)),
          p99_ms: round(percentile(steady, 99)),
        },
        verdict: `target p50 <= 20 ms: ${round(percentile(steady, 50))} ms (${percentile(steady, 50) <= 20 ? 'met' : 'not met'})`,
      });

      ctx.log(`this system, SMTP healthy: ${durationMs} ms at concurrency ${CONCURRENCY}...`);
      ours.healthy = await closedLoop({
        concurrency: CONCURRENCY,
        durationMs,
        request: (i) => post(api, body(i, 'healthy')),
        onProgress: (n) => ctx.log(`  ${n} requests`),
      });

      // register → SMTP accepted, from the mails the test server recorded during the healthy phase.
      const e2e = await acceptLatencies(db.url, 'healthy', system.smtp.messages);
      ctx.log('this system, SMTP stalling...');
      await system.smtp.setFault({ mode: 'stall-connect' });
      ours.stalling = await closedLoop({
        concurrency: CONCURRENCY,
        durationMs,
        request: (i) => post(api, body(i, 'stalled')),
        onProgress: (n) => ctx.log(`  ${n} requests`),
      });
      await system.smtp.setFault({ mode: 'healthy' });

      rows.push({
        benchmark: 'register → mail accepted',
        case: 'this system (SMTP healthy)',
        metrics: { mails: e2e.length, p50_ms: round(percentile(e2e, 50)), p99_ms: round(percentile(e2e, 99)) },
      });
    } finally {
      await system.stop();
      await db.drop();
    }

    // ---- the synchronous baseline ----
    const baseDb = await ctx.createDatabase();
    const smtp = await startSmtpTestServer();
    const baseline = await startSyncBaseline({
      databaseUrl: baseDb.url,
      smtpHost: smtp.host,
      smtpPort: smtp.port,
      smtpTimeoutMs: SMTP_TIMEOUT_MS,
    });
    const theirs: Record<string, Awaited<ReturnType<typeof closedLoop>>> = {};
    try {
      await closedLoop({ concurrency: 4, durationMs: 2_000, request: (i) => post(baseline.url, body(i, 'warm')) });
      ctx.log('synchronous baseline, SMTP healthy...');
      theirs.healthy = await closedLoop({
        concurrency: CONCURRENCY,
        durationMs,
        request: (i) => post(baseline.url, body(i, 'healthy')),
      });
      ctx.log('synchronous baseline, SMTP stalling...');
      await smtp.setFault({ mode: 'stall-connect' });
      theirs.stalling = await closedLoop({
        concurrency: CONCURRENCY,
        durationMs: Math.max(durationMs, SMTP_TIMEOUT_MS * 3),
        request: (i) => post(baseline.url, body(i, 'stalled')),
      });
    } finally {
      await baseline.close();
      await smtp.close();
      await baseDb.drop();
    }

    const figures = (r: Awaited<ReturnType<typeof closedLoop>>) => ({
      per_s: r.per_s,
      p50_ms: r.p50_ms,
      p99_ms: r.p99_ms,
      ok: r.ok,
      errors: r.errors,
    });
    const ratio = (ours.stalling?.p99_ms ?? NaN) / (ours.healthy?.p99_ms ?? NaN);
    rows.push(
      { benchmark: 'registration, SMTP healthy', case: 'this system (outbox)', metrics: figures(ours.healthy!) },
      {
        benchmark: 'registration, SMTP healthy',
        case: 'baseline: mail sent in the request',
        metrics: figures(theirs.healthy!),
      },
      {
        benchmark: 'registration, SMTP stalling',
        case: 'this system (outbox)',
        metrics: figures(ours.stalling!),
        verdict: `p99 stalling/healthy = ${ratio.toFixed(2)} (target <= 1.2: ${ratio <= 1.2 ? 'met' : 'NOT met'})`,
      },
      {
        benchmark: 'registration, SMTP stalling',
        case: 'baseline: mail sent in the request',
        metrics: figures(theirs.stalling!),
        verdict: `p99 ${theirs.stalling!.p99_ms} ms vs SMTP timeout ${SMTP_TIMEOUT_MS} ms (${theirs.stalling!.p99_ms >= SMTP_TIMEOUT_MS ? 'at least the timeout, as expected' : 'below the timeout'}); ${theirs.stalling!.errors} of ${theirs.stalling!.requests} failed although the user was written`,
      },
    );
    return rows;
  },
};
