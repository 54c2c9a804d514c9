import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { startSystem } from '../test/support/system';
import { startSmtpTestServer, type ReceivedMail } from '../test/support/smtp-test-server';
import { percentile, round, type Bench } from './lib';

/**
 * Register → SMTP accepted with a fallback provider configured (SMTP_FALLBACK_URLS), same system, same
 * run: first with the primary healthy, then with the primary stalled (accepts TCP, never greets) and the
 * fallback healthy. Registrations are paced (open loop, ~10/s like the 200 over 20 s), so the
 * figures are the mail path's latency, not a queue built by overload. SMTP_TIMEOUT_MS=3000.
 * `npm run bench failover` runs only this one.
 */
const SMTP_TIMEOUT_MS = 3000;
const RATE_PER_S = 10;

export const bench: Bench = {
  name: 'failover: register → mail accepted',
  run: async (ctx) => {
    const durationMs = Math.max(5_000, Math.round(20_000 * ctx.scale));
    const count = Math.round((durationMs / 1000) * RATE_PER_S);
    const tag = randomBytes(3).toString('hex');
    const fallback = await startSmtpTestServer();
    const db = await ctx.createDatabase();
    const system = await startSystem({
      databaseUrl: db.url,
      brokers: ctx.brokers.join(','),
      topicPrefix: ctx.uniquePrefix('failover'),
      counts: { accounts: 1, relay: 1, mailer: 1 },
      env: {
        LOG_LEVEL: 'warn',
        SMTP_TIMEOUT_MS: String(SMTP_TIMEOUT_MS),
        SMTP_FALLBACK_URLS: `smtp://${fallback.host}:${fallback.port}?name=fallback`,
        BREAKER_RESET_TIMEOUT_MS: '5000',
        MAIL_RETRY_BASE_MS: '1000',
      },
    });
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const api = system.accountsUrls()[0] ?? '';
      const register = async (email: string) => {
        const res = await fetch(`${api}/api/v1/usr/register`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ email, password: `bench-password-${email}` }),
        });
        await res.arrayBuffer();
        if (res.status !== 201) throw new Error(`register ${email}: HTTP ${res.status}`);
      };
      const allMail = (): ReceivedMail[] => [...system.smtp.messages, ...fallback.messages];
      /** `count` registrations paced over durationMs; then waits until each has its mail (or 60 s). */
      const phase = async (label: string) => {
        ctx.log(`${label}: ${count} registrations over ${durationMs} ms...`);
        const start = Date.now();
        const emails = Array.from({ length: count }, (_, i) => `${label}.${tag}.${i}@example.test`);
        await Promise.all(
          emails.map(async (email, i) => {
            const due = start + (i * 1000) / RATE_PER_S;
            if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
            await register(email);
          }),
        );
        const wanted = new Set(emails);
        const deadline = Date.now() + 60_000;
        while (allMail().filter((m) => wanted.has(m.to[0] ?? '')).length < count && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 250));
        }
        const { rows } = await client.query<{ email: string; created_at: Date }>(
          `SELECT email, created_at FROM users WHERE email LIKE $1`,
          [`${label}.${tag}.%`],
        );
        const createdAt = new Map(rows.map((r) => [r.email, r.created_at.getTime()]));
        const latencies: number[] = [];
        const viaFallback = fallback.messages.filter((m) => wanted.has(m.to[0] ?? '')).length;
        for (const m of allMail()) {
          const at = createdAt.get(m.to[0] ?? '');
          if (at !== undefined) latencies.push(m.receivedAt.getTime() - at);
        }
        return {
          registrations: count,
          mails: latencies.length,
          via_fallback: viaFallback,
          p50_ms: round(percentile(latencies, 50)),
          p99_ms: round(percentile(latencies, 99)),
        };
      };

      // Warm-up: JIT, pools, the first Kafka metadata.
      for (let i = 0; i < 20; i++) await register(`warm.${tag}.${i}@example.test`);
      const healthy = await phase('healthy');
      await system.smtp.setFault({ mode: 'stall-connect' });
      const failover = await phase('failover');
      await system.smtp.setFault({ mode: 'healthy' });
      // Guarantee 5: about one SMTP_TIMEOUT_MS at most (the mails in the primary's first round of timeouts,
      // and each half-open trial, wait that long); 1.5 x allows for the pipeline's own latency under load.
      const bound = 1.5 * SMTP_TIMEOUT_MS;
      const verdict =
        `p50 ${failover.p50_ms} ms (issue target <= 5000: ${failover.p50_ms <= 5000 ? 'met' : 'NOT met'}); ` +
        `p99 ${failover.p99_ms} ms vs SMTP_TIMEOUT_MS ${SMTP_TIMEOUT_MS} (guarantee 5, <= ${bound}: ` +
        `${failover.p99_ms <= bound ? 'met' : 'NOT met'})`;
      return [
        {
          benchmark: 'register → mail accepted, fallback configured',
          case: 'primary healthy',
          metrics: healthy,
        },
        {
          benchmark: 'register → mail accepted, fallback configured',
          case: 'failover (primary stalled, fallback healthy)',
          metrics: failover,
          verdict,
        },
      ];
    } finally {
      await client.end();
      await system.stop();
      await fallback.close();
      await db.drop();
    }
  },
};
