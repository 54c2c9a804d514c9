import { performance } from 'node:perf_hooks';
import { createPool } from '@shared/db';
import { createKafka } from '@shared/kafka';
import { Partitioners } from 'kafkajs';
import { createLogger } from '@shared/logger';
import { createMetricsRegistry } from '@shared/metrics';
import { topicNames } from '@shared/topics';
import { startSmtpTestServer } from '../test/support/smtp-test-server';
import { parseMailerConfig } from '../services/mailer/src/config';
import { TEST_MAIL_PAYLOAD_KEY } from '../test/support/payload-key';
import { createSmtpTransport } from '../services/mailer/src/data-access/mail-transport';
import { renderConfirmationMail } from '../services/mailer/src/domain/render-confirmation-mail';
import { createMailer } from '../services/mailer/src/mailer';
import { percentile, round, type Bench, type BenchContext, type BenchRow } from './lib';
import { mailRequestBatch, sendMailRequests } from './mail-burst';

const POOL_SIZE = 5;

/** Sends `count` mails with `concurrency` in flight; returns mails per second. */
async function sendMany(send: (i: number) => Promise<unknown>, count: number, concurrency: number): Promise<number> {
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) {
        const i = next++;
        await send(i);
      }
    }),
  );
  return count / ((performance.now() - started) / 1000);
}

async function transportThroughput(ctx: BenchContext): Promise<BenchRow[]> {
  const count = Math.max(50, Math.round(2_000 * ctx.scale));
  const smtp = await startSmtpTestServer();
  const logger = createLogger({ service: 'mailer-bench', level: 'silent' });
  const config = parseMailerConfig({
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    SMTP_POOL_SIZE: String(POOL_SIZE),
    SMTP_TIMEOUT_MS: '10000',
  });
  const rows: BenchRow[] = [];
  try {
    const results: Record<string, number> = {};
    for (const pooled of [true, false]) {
      const transport = createSmtpTransport({ config, logger, pool: pooled });
      smtp.resetCounters();
      ctx.log(`mailer: ${count} mails through ${pooled ? 'the pooled' : 'a one-connection-per-mail'} transport`);
      const perSecond = await sendMany(
        (i) =>
          transport.send(
            renderConfirmationMail({
              to: `bench-${i}@example.test`,
              vars: { code: String(i % 1e6).padStart(6, '0'), first_name: 'Bench' },
            }),
          ),
        count,
        POOL_SIZE,
      );
      await transport.close();
      const key = pooled ? 'pooled' : 'unpooled';
      results[key] = perSecond;
      rows.push({
        benchmark: `mailer SMTP send ${count}`,
        case: pooled
          ? `nodemailer pool (${POOL_SIZE} connections)`
          : `baseline: one connection per mail (${POOL_SIZE} in flight)`,
        metrics: { mails_per_s: round(perSecond), smtp_connections: smtp.connectionCount() },
      });
    }
    const ratio = (results.pooled ?? 0) / (results.unpooled ?? 1);
    rows[0] = {
      ...(rows[0] as BenchRow),
      verdict: `target pooled >= 1.5x one-per-mail: ${round(ratio, 2)}x (${ratio >= 1.5 ? 'met' : 'not met'})`,
    };
  } finally {
    await smtp.close();
  }
  return rows;
}

/**
 * Request produced to Kafka -> SMTP accepted. `burst`: all at once (throughput; latency is mostly
 * queueing behind the SMTP pool). `ratePerSecond`: a steady load below capacity (the latency a user
 * sees when the system is not saturated).
 */
async function endToEnd(
  ctx: BenchContext,
  mode: { burst: true } | { ratePerSecond: number; seconds: number },
): Promise<BenchRow[]> {
  const count =
    'burst' in mode
      ? Math.max(50, Math.round(1_000 * ctx.scale))
      : Math.max(20, Math.round(mode.ratePerSecond * mode.seconds * ctx.scale));
  const chunk = 'burst' in mode ? 100 : 1;
  const smtp = await startSmtpTestServer();
  const database = await ctx.createDatabase();
  const prefix = ctx.uniquePrefix('mailer-bench');
  const logger = createLogger({ service: 'mailer-bench', level: 'warn' });
  const config = parseMailerConfig({
    DATABASE_URL: database.url,
    KAFKA_BROKERS: ctx.brokers.join(','),
    KAFKA_TOPIC_PREFIX: prefix,
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    SMTP_POOL_SIZE: String(POOL_SIZE),
    LOG_LEVEL: 'warn',
    MAIL_PAYLOAD_KEY: TEST_MAIL_PAYLOAD_KEY,
  });
  const pool = createPool({ connectionString: database.url, logger, applicationName: 'mailer-bench' });
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: 'mailer-bench', logger });
  const transport = createSmtpTransport({ config, logger });
  const mailer = createMailer({ pool, kafka, transport, logger, registry: createMetricsRegistry('mailer'), config });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  try {
    await mailer.start();
    await producer.connect();
    const requestedAt = new Map<string, number>();
    ctx.log(`mailer: ${count} requests produced to Kafka -> SMTP accepted`);
    const started = performance.now();
    for (let i = 0; i < count; i += chunk) {
      if ('ratePerSecond' in mode) {
        const wait = started + (i * 1000) / mode.ratePerSecond - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      }
      const batch = mailRequestBatch('e2e', i, Math.min(chunk, count - i));
      for (const p of batch) requestedAt.set(p.to, Date.now());
      await sendMailRequests(producer, topicNames(prefix).mailRequests, batch);
    }
    const deadline = Date.now() + 300_000;
    while (smtp.messages.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const seconds = (performance.now() - started) / 1000;
    const latencies = smtp.messages.map(
      (m) => m.receivedAt.getTime() - (requestedAt.get(m.to[0] ?? '') ?? m.receivedAt.getTime()),
    );
    return [
      {
        benchmark:
          'burst' in mode
            ? `mailer end to end, burst of ${count}`
            : `mailer end to end, ${mode.ratePerSecond}/s steady`,
        case: `Kafka -> inbox -> SMTP (pool ${POOL_SIZE})`,
        metrics: {
          mails_per_s: round(smtp.messages.length / seconds),
          delivered: smtp.messages.length,
          p50_ms: round(percentile(latencies, 50)),
          p99_ms: round(percentile(latencies, 99)),
        },
        verdict: `delivered ${smtp.messages.length}/${count}`,
      },
    ];
  } finally {
    await producer.disconnect().catch(() => undefined);
    await mailer.stop().catch(() => undefined);
    await transport.close();
    await pool.end();
    await database.drop();
    await smtp.close();
  }
}

export const bench: Bench = {
  name: 'mailer',
  run: async (ctx) => [
    ...(await transportThroughput(ctx)),
    ...(await endToEnd(ctx, { burst: true })),
    ...(await endToEnd(ctx, { ratePerSecond: 50, seconds: 10 })),
  ],
};
