import { randomBytes } from 'node:crypto';
import { startSystem } from '../test/support/system';
import { startSmtpTestServer } from '../test/support/smtp-test-server';
import { startSyncBaseline } from './baseline/sync-register';
import { closedLoop } from './load';
import { percentile, round, type Bench, type BenchRow } from './lib';

/**
 * Registration with SMTP healthy and with SMTP stalling, for this system (real processes: accounts,
 * relay, mailer, Kafka) and for the synchronous baseline (mail sent inside the request), same SMTP
 * timeout, same machine, same run. Plus register → SMTP-accepted latency of this system.
 */
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const SMTP_TIMEOUT_MS = Number(process.env.BENCH_SMTP_TIMEOUT_MS ?? 2000);

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

      ctx.log(`this system, SMTP healthy: ${durationMs} ms at concurrency ${CONCURRENCY}...`);
      ours.healthy = await closedLoop({
        concurrency: CONCURRENCY,
        durationMs,
        request: (i) => post(api, body(i, 'healthy')),
        onProgress: (n) => ctx.log(`  ${n} requests`),
      });

      // register → SMTP accepted, from the mails the test server recorded during the healthy phase.
      const e2e: number[] = [];
      // Let the last mails of the phase arrive before reading their timings.
      await new Promise((r) => setTimeout(r, 3_000));
      const { rows: timing } = await (async () => {
        const pg = await import('pg');
        const client = new pg.default.Client({ connectionString: db.url });
        await client.connect();
        try {
          return await client.query<{ email: string; created_at: Date }>(
            `SELECT email, created_at FROM users WHERE email LIKE 'healthy.%'`,
          );
        } finally {
          await client.end();
        }
      })();
      const createdAt = new Map(timing.map((t) => [t.email, t.created_at.getTime()]));
      for (const m of system.smtp.messages) {
        const at = createdAt.get(m.to[0] ?? '');
        if (at !== undefined) e2e.push(m.receivedAt.getTime() - at);
      }

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
