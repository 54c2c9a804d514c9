import { randomInt, randomUUID } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { Producer } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { MailDeliveryStatusPayload, MailRequestedPayload } from '@shared/events';
import { createKafka, ensureTopics } from '@shared/kafka';
import { createLogger } from '@shared/logger';
import { createMetricsRegistry } from '@shared/metrics';
import { topicNames, type TopicNames } from '@shared/topics';
import {
  createTestDatabase,
  collectMessages,
  testBrokers,
  testKafka,
  uniquePrefix,
  type TestDatabase,
} from '../../../../test/support/infra';
import { startSmtpTestServer, type SmtpTestServer, type SmtpTlsMode } from '../../../../test/support/smtp-test-server';
import { waitFor } from '../../../../test/support/wait-for';
import { mailRequestMessage } from '../../../../test/support/mail-request-message';
import { sealTestCode, TEST_MAIL_PAYLOAD_KEY } from '../../../../test/support/payload-key';
import { parseMailerConfig } from '../../src/config';
import { createFallbackTransports, createSmtpTransport } from '../../src/data-access/mail-transport';
import { createMailer, type Mailer } from '../../src/mailer';

export const REPO_ROOT = path.resolve(__dirname, '../../../..');

/** Settings that keep a test run short: small timeouts and backoff, a fast-resetting breaker. */
export const FAST_ENV: Record<string, string> = {
  SMTP_TIMEOUT_MS: '300',
  SMTP_POOL_SIZE: '2',
  MAIL_RETRY_BASE_MS: '100',
  MAIL_RETRY_MAX_MS: '400',
  MAIL_MAX_ATTEMPTS: '50',
  BREAKER_RESET_TIMEOUT_MS: '1500',
  BREAKER_VOLUME_THRESHOLD: '1000',
  BREAKER_ERROR_THRESHOLD_PERCENT: '50',
  MAIL_FROM: 'Registration <no-reply@example.test>',
};

export type StatusEvent = MailDeliveryStatusPayload & { event_id: string };
export type DlqRecord = {
  reason: string;
  error: string;
  error_class: string | null;
  request_id: string | null;
  attempts: number | null;
  original_value: string | null;
  original_value_base64: string | null;
};

export type MailerHarness = {
  db: TestDatabase;
  smtp: SmtpTestServer;
  topics: TopicNames;
  env: Record<string, string>;
  /** Every log line the in-process mailer wrote (raw JSON text). */
  logs: string[];
  registry: Registry;
  mailer: Mailer | undefined;
  startInProcess: () => Promise<Mailer>;
  statuses: () => StatusEvent[];
  statusesOf: (requestId: string) => StatusEvent[];
  dlqRecords: () => DlqRecord[];
  waitForStatus: (requestId: string, status: StatusEvent['status'], timeoutMs?: number) => Promise<StatusEvent>;
  /** Publishes requests as accounts would: a plain 6-digit `vars.code` is sealed with the test key first. */
  produce: (requests: MailRequestedPayload[]) => Promise<void>;
  produceRaw: (values: (string | Buffer | null)[]) => Promise<void>;
  metric: (name: string, labels?: Record<string, string>) => Promise<number>;
  row: (
    requestId: string,
  ) => Promise<
    { state: string; attempts: number; possible_duplicate: boolean; last_error_class: string | null } | undefined
  >;
  stop: () => Promise<void>;
};

export function mailRequest(
  overrides: Partial<Omit<MailRequestedPayload, 'vars'>> & { vars?: Partial<MailRequestedPayload['vars']> } = {},
): MailRequestedPayload {
  const { vars, ...rest } = overrides;
  return {
    request_id: randomUUID(),
    user_id: randomUUID(),
    to: `user-${randomInt(1e9)}@example.test`,
    template: 'email_confirmation',
    requested_at: new Date().toISOString(),
    ...rest,
    vars: { code: String(randomInt(1e6)).padStart(6, '0'), first_name: 'Ada', last_name: 'Lovelace', ...vars },
  };
}

export async function startMailerHarness(
  opts: { env?: Record<string, string>; smtpAuth?: { user: string; pass: string }; smtpTls?: SmtpTlsMode } = {},
): Promise<MailerHarness> {
  const db = await createTestDatabase('mailer');
  // The mailer logs PostgreSQL outages itself; an idle client dropped at teardown must not crash jest.
  db.pool.on('error', () => undefined);
  const smtp = await startSmtpTestServer({
    ...(opts.smtpAuth ? { auth: opts.smtpAuth } : {}),
    ...(opts.smtpTls ? { tls: opts.smtpTls } : {}),
  });
  const prefix = uniquePrefix('mailer');
  const topics = topicNames(prefix);
  const env: Record<string, string> = {
    ...FAST_ENV,
    // The mailer's own database; DATABASE_URL points nowhere, so a mailer that used it would fail here.
    MAILER_DATABASE_URL: db.url,
    DATABASE_URL: 'postgres://127.0.0.1:1/not-the-mailers-database',
    KAFKA_BROKERS: testBrokers().join(','),
    KAFKA_TOPIC_PREFIX: prefix,
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    PORT: '0',
    LOG_LEVEL: 'info',
    MAIL_PAYLOAD_KEY: TEST_MAIL_PAYLOAD_KEY,
    ...(opts.smtpAuth ? { SMTP_USER: opts.smtpAuth.user, SMTP_PASSWORD: opts.smtpAuth.pass } : {}),
    ...(smtp.caPem ? { SMTP_TLS_CA: smtp.caPem } : {}),
    ...(smtp.tls === 'implicit' ? { SMTP_SECURE: 'true' } : {}),
    ...opts.env,
  };

  const admin = testKafka('mailer-test-admin').admin();
  await admin.connect();
  await ensureTopics(admin, [
    { topic: topics.mailRequests, numPartitions: 3 },
    { topic: topics.mailDeliveryStatus, numPartitions: 3 },
    { topic: topics.mailRequestsDlq, numPartitions: 1 },
  ]);
  await admin.disconnect();
  const collector = await collectMessages([topics.mailDeliveryStatus, topics.mailRequestsDlq]);
  const producer: Producer = testKafka('mailer-test-producer').producer();
  await producer.connect();

  const logs: string[] = [];
  const registry = createMetricsRegistry('mailer');
  const stops: (() => Promise<void>)[] = [];
  const harness: MailerHarness = {
    db,
    smtp,
    topics,
    env,
    logs,
    registry,
    mailer: undefined,
    startInProcess: async () => {
      const config = parseMailerConfig(env);
      const destination = new Writable({
        write(chunk: Buffer, _enc, done) {
          logs.push(...chunk.toString('utf8').split('\n').filter(Boolean));
          done();
        },
      });
      const logger = createLogger({ service: 'mailer', level: config.LOG_LEVEL, destination });
      const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: 'mailer-test', logger, security: config });
      const transport = createSmtpTransport({ config, logger });
      const fallbacks = createFallbackTransports({ config, logger });
      const mailer = createMailer({
        pool: db.pool,
        kafka,
        transport,
        fallbacks,
        logger,
        registry,
        config,
        sweepMs: 200,
      });
      await mailer.start();
      harness.mailer = mailer;
      stops.push(async () => {
        await mailer.stop();
        await transport.close();
        for (const f of fallbacks) await f.transport.close();
      });
      return mailer;
    },
    statuses: () =>
      collector.messages
        .filter((m) => m.topic === topics.mailDeliveryStatus && m.value !== null)
        .map((m) => {
          const envelope = JSON.parse(m.value as string) as { id: string; payload: MailDeliveryStatusPayload };
          return { ...envelope.payload, event_id: envelope.id };
        }),
    statusesOf: (requestId) => harness.statuses().filter((s) => s.request_id === requestId),
    dlqRecords: () =>
      collector.messages
        .filter((m) => m.topic === topics.mailRequestsDlq && m.value !== null)
        .map((m) => JSON.parse(m.value as string) as DlqRecord),
    waitForStatus: (requestId, status, timeoutMs = 20_000) =>
      waitFor(() => harness.statusesOf(requestId).find((s) => s.status === status), {
        timeoutMs,
        message: `status ${status} for ${requestId} (seen: ${JSON.stringify(harness.statusesOf(requestId).map((s) => [s.status, s.error_class]))})`,
      }),
    produce: async (requests) => {
      const messages = requests.map((plain) => {
        const code = /^\d{6}$/.test(plain.vars.code)
          ? sealTestCode(plain.vars.code, plain.request_id)
          : plain.vars.code;
        return mailRequestMessage({ ...plain, vars: { ...plain.vars, code } });
      });
      await producer.send({ topic: topics.mailRequests, messages });
    },
    produceRaw: async (values) => {
      await producer.send({ topic: topics.mailRequests, messages: values.map((value) => ({ key: 'poison', value })) });
    },
    metric: async (name, labels = {}) => {
      const metric = registry.getSingleMetric(name);
      if (!metric) throw new Error(`no metric ${name}`);
      const { values } = await metric.get();
      const match = values.find((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want));
      return match?.value ?? 0;
    },
    row: async (requestId) => {
      const { rows } = await db.pool.query(
        `SELECT state, attempts, possible_duplicate, last_error_class FROM mailer_requests WHERE request_id = $1`,
        [requestId],
      );
      return rows[0];
    },
    stop: async () => {
      if (process.env.MAILER_TEST_DUMP_LOGS) process.stderr.write(`${logs.join('\n')}\n`);
      for (const stop of stops.reverse()) await stop().catch(() => undefined);
      await producer.disconnect();
      await collector.stop();
      await smtp.close();
      await db.drop();
    },
  };
  return harness;
}

/** The mailer as a child process (`npx tsx services/mailer/src/main.ts`), for SIGKILL and start-up tests. */
export type MailerProcess = {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  kill: (signal: NodeJS.Signals) => void;
};

export function spawnMailer(env: Record<string, string>): MailerProcess {
  // Its own process group: npx and tsx each start a child, and SIGKILL must reach the node that runs the mailer.
  const child = spawn('npx', ['tsx', 'services/mailer/src/main.ts'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    output: () => output,
    exited,
    kill: (signal) => {
      if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
      try {
        process.kill(-child.pid, signal);
      } catch (err) {
        // Already gone (the group exited between the check and the kill): nothing to stop.
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
    },
  };
}
