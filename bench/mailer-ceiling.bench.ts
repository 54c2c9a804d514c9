import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { Kafka, Partitioners, logLevel } from 'kafkajs';
import nodemailer from 'nodemailer';
import { SMTPServer } from 'smtp-server';
import { topicNames } from '@shared/topics';
import { spawnService, waitForReady, type ServiceProcess } from '../infra/dev/service-process';
import { freePort } from '../test/support/ports';
import { coalesceWrites } from '../services/mailer/src/data-access/smtp-socket';
import { applySmtpPipelining } from '../services/mailer/src/data-access/smtp-pipelining';
import { TEST_MAIL_PAYLOAD_KEY } from '../test/support/payload-key';
import { percentile, round, type Bench, type BenchContext, type BenchRow } from './lib';
import { processCpuMs } from './proc-stats';
import { produceMailBurst, waitForStatuses } from './mail-burst';

/**
 * The mailer against a measured ceiling (issue 15):
 *  1. the transport's own ceiling: a bare nodemailer pool with the mailer's sockets (no-delay, writes
 *     coalesced) blasting a sink that only counts (no MIME parsing), POOL_SIZE connections;
 *  2. the mailer end to end — Kafka -> inbox -> SMTP -> status recorded — as real processes against
 *     the same sink, with one and with two instances (6 partitions), as a ratio of the ceiling.
 * Targets: >= 1,000 mails/s per instance and >= 0.5 of the ceiling.
 * BENCH_CPU_PROF=<dir> runs the mailers with `node --cpu-prof` (as the cpu bench does; figures from such
 * a run are not the mailer's).
 */
const POOL_SIZE = 5;
const TARGET_PER_INSTANCE = 1_000;
const TARGET_RATIO = 0.5;

type Sink = { port: number; count: () => number; acceptedAt: Map<string, number>; close: () => Promise<void> };

/** An SMTP server that accepts everything and counts it: no parsing, no-delay sockets, nothing else. */
async function countingSink(): Promise<Sink> {
  const acceptedAt = new Map<string, number>();
  let count = 0;
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, callback) {
      stream.on('end', () => {
        count += 1;
        for (const r of session.envelope.rcptTo) acceptedAt.set(r.address, performance.now());
        callback();
      });
      stream.resume();
    },
  });
  // smtp-server's net.Server: its replies must not wait on Nagle either.
  (server as unknown as { server: net.Server }).server.on('connection', (socket: net.Socket) =>
    socket.setNoDelay(true),
  );
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    port,
    count: () => count,
    acceptedAt,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** 1. A bare nodemailer pool, each socket opened by us with TCP_NODELAY and coalesced writes (getSocket). */
async function transportCeiling(ctx: BenchContext, sink: Sink): Promise<{ row: BenchRow; perSecond: number }> {
  const count = Math.max(500, Math.round(10_000 * ctx.scale));
  // The mailer's envelope pipelining too (process-wide, as in the mailer): no credit for it either.
  applySmtpPipelining();
  const transport = nodemailer.createTransport({
    pool: true,
    maxConnections: POOL_SIZE,
    maxMessages: Infinity,
    host: '127.0.0.1',
    port: sink.port,
    secure: false,
    ignoreTLS: true,
    getSocket: (
      options: { host?: string; port?: number },
      callback: (err: Error | null, s?: { connection: net.Socket }) => void,
    ) => {
      // The mailer's own socket treatment (no-delay, a turn's writes coalesced): the ceiling is the
      // transport at its best, so the mailer gets no credit for it.
      const socket = coalesceWrites(
        net.connect({ host: options.host ?? '127.0.0.1', port: options.port ?? sink.port }, () =>
          callback(null, { connection: socket }),
        ),
      );
      socket.setNoDelay(true);
      socket.once('error', (err) => callback(err));
    },
  } as nodemailer.TransportOptions);
  const blast = async (tag: string): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: POOL_SIZE * 4 }, async () => {
        while (next < count) {
          const i = next++;
          await transport.sendMail({
            from: 'bench@example.test',
            to: `${tag}-${i}@example.test`,
            subject: 'ceiling',
            text: `code ${i}`,
          });
        }
      }),
    );
  };
  // Warmed up like the mailer it is compared with (endToEnd): one pass unmeasured, then the timed one.
  await blast('ceiling-warm');
  const before = sink.count();
  const started = performance.now();
  await blast('ceiling');
  const perSecond = count / ((performance.now() - started) / 1000);
  transport.close();
  ctx.log(`mailer ceiling: ${round(perSecond)} mails/s (${sink.count() - before} counted)`);
  return {
    perSecond,
    row: {
      benchmark: `mailer vs SMTP ceiling (${POOL_SIZE} connections)`,
      case: `baseline: bare nodemailer pool, no-delay sockets, counting sink (${count} mails after ${count} of warm-up)`,
      metrics: { mails_per_s: round(perSecond) },
    },
  };
}

/** 2. N mailer processes draining `count` requests produced to Kafka in one go, until every status is published. */
async function endToEnd(ctx: BenchContext, sink: Sink, instances: number, ceiling: number): Promise<BenchRow> {
  const count = Math.max(200, Math.round(5_000 * ctx.scale));
  const database = await ctx.createDatabase();
  const prefix = ctx.uniquePrefix(`mailer-ceiling-${instances}`);
  const topics = topicNames(prefix);
  const procs: ServiceProcess[] = [];
  const kafka = new Kafka({ brokers: ctx.brokers, clientId: 'mailer-ceiling-bench', logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  try {
    for (let i = 0; i < instances; i++) {
      const port = await freePort();
      const env = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        NODE_ENV: 'test',
        LOG_LEVEL: 'warn',
        PORT: String(port),
        DATABASE_URL: database.url,
        KAFKA_BROKERS: ctx.brokers.join(','),
        KAFKA_TOPIC_PREFIX: prefix,
        SMTP_HOST: '127.0.0.1',
        SMTP_PORT: String(sink.port),
        SMTP_POOL_SIZE: String(POOL_SIZE),
        MAIL_PAYLOAD_KEY: TEST_MAIL_PAYLOAD_KEY,
      };
      const profileDir = process.env.BENCH_CPU_PROF;
      const proc = spawnService('mailer', {
        env,
        label: `mailer#${i}`,
        ...(profileDir ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profileDir}/mailer-x${instances}-${i}`] } : {}),
      });
      procs.push(proc);
      await waitForReady(`http://127.0.0.1:${port}/readyz`, 60_000, () => proc.child.exitCode !== null);
    }
    await producer.connect();
    // A warm-up burst of the same size first: the figure is a running mailer's, not a cold process's
    // (JIT compilation, connection pools, the consumer's first fetches), like the cpu bench's warm-up.
    const warm = await produceMailBurst(producer, topics.mailRequests, `warm-${instances}`, count);
    await waitForStatuses(kafka, topics.mailDeliveryStatus, warm.requestIds);
    const mailersCpuMs = () => procs.reduce((sum, p) => sum + (processCpuMs(p.pid) ?? Number.NaN), 0);
    const cpuBefore = mailersCpuMs();
    const started = performance.now();
    const { requestedAt, requestIds } = await produceMailBurst(
      producer,
      topics.mailRequests,
      `e2e-${instances}`,
      count,
    );
    const statuses = await waitForStatuses(kafka, topics.mailDeliveryStatus, requestIds);
    const seconds = (performance.now() - started) / 1000;
    // The mailers' own CPU (every thread, /proc), whatever the host's other processes made of the burst.
    const cpuMsPerMail = (mailersCpuMs() - cpuBefore) / count;
    const latencies = [...requestedAt]
      .map(([to, at]) => (sink.acceptedAt.get(to) ?? Number.NaN) - at)
      .filter((v) => Number.isFinite(v));
    const perSecond = statuses / seconds;
    const perInstance = perSecond / instances;
    const ratio = perSecond / ceiling;
    ctx.log(
      `mailer e2e x${instances}: ${round(perSecond)} mails/s, ${statuses}/${count} statuses, ` +
        `${round(cpuMsPerMail, 3)} mailer CPU ms per mail`,
    );
    return {
      benchmark: `mailer vs SMTP ceiling (${POOL_SIZE} connections)`,
      case: `mailer x${instances} (processes), Kafka -> inbox -> SMTP -> status, burst of ${count} after a warm-up burst`,
      metrics: {
        mails_per_s: round(perSecond),
        per_instance: round(perInstance),
        statuses,
        ratio_to_ceiling: round(ratio, 2),
        mailer_cpu_ms_per_mail: round(cpuMsPerMail, 3),
        p50_ms: round(percentile(latencies, 50)),
        p99_ms: round(percentile(latencies, 99)),
      },
      verdict:
        `targets >= ${TARGET_PER_INSTANCE}/s per instance: ${round(perInstance)} (${perInstance >= TARGET_PER_INSTANCE ? 'met' : 'not met'}); ` +
        `>= ${TARGET_RATIO} of the ceiling: ${round(ratio, 2)} (${ratio >= TARGET_RATIO ? 'met' : 'not met'})`,
    };
  } finally {
    await producer.disconnect().catch(() => undefined);
    await Promise.all(procs.map((p) => p.stop(10_000)));
    await database.drop();
  }
}

export const bench: Bench = {
  name: 'mailer ceiling',
  run: async (ctx) => {
    const sink = await countingSink();
    try {
      const { row, perSecond } = await transportCeiling(ctx, sink);
      return [row, await endToEnd(ctx, sink, 1, perSecond), await endToEnd(ctx, sink, 2, perSecond)];
    } finally {
      await sink.close();
    }
  },
};
