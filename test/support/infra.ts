import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Kafka, logLevel, type Consumer, type KafkaMessage } from 'kafkajs';
import { waitForTopicLeaders } from '../../shared/src/topic-leaders';
import { readInfraState } from './infra-state';
import { withDatabase } from './database-url';
import { waitFor } from './wait-for';

export type TestDatabase = { name: string; url: string; pool: pg.Pool; drop: () => Promise<void> };

/**
 * A fresh, migrated database of this test file's own: a clone of the run's template of `service`
 * (accounts' schema — which the relay reads too — or the mailer's).
 */
export async function createTestDatabase(service: 'accounts' | 'mailer' = 'accounts'): Promise<TestDatabase> {
  const state = readInfraState();
  const name = `${state.databasePrefix}_${randomBytes(4).toString('hex')}`;
  const template = service === 'mailer' ? state.mailerTemplateDatabase : state.templateDatabase;
  const admin = new pg.Client({ connectionString: state.adminDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name} TEMPLATE ${template}`);
  } finally {
    await admin.end();
  }
  const url = withDatabase(state.adminDatabaseUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // pool.end() resolves before its backends are gone; the DROP … WITH (FORCE) in drop() may then
  // terminate one, and its FATAL reaches an idle client. Without a listener the pool would rethrow
  // it as an unhandled 'error' in whichever test runs next.
  pool.on('error', () => undefined);
  return {
    name,
    url,
    pool,
    drop: async () => {
      await pool.end().catch(() => undefined);
      const c = new pg.Client({ connectionString: state.adminDatabaseUrl });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      } finally {
        await c.end();
      }
    },
  };
}

export function testBrokers(): string[] {
  return readInfraState().kafkaBrokers.split(',');
}

/** A topic/group prefix unique to one test, so tests never see each other's messages. */
export function uniquePrefix(label = 't'): string {
  return `${label}-${randomBytes(4).toString('hex')}.`;
}

export function testKafka(clientId = 'test'): Kafka {
  return new Kafka({ brokers: testBrokers(), clientId, logLevel: logLevel.NOTHING });
}

export async function createTopic(topic: string, numPartitions = 3, brokers = testBrokers()): Promise<void> {
  const admin = new Kafka({ brokers, clientId: 'test-admin', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: false });
    await waitForTopicLeaders(admin, [topic]);
  } finally {
    await admin.disconnect();
  }
}

export type Collected = {
  topic: string;
  partition: number;
  key: string | null;
  value: string | null;
  headers: Record<string, string>;
  message: KafkaMessage;
};

/**
 * A consumer that collects every message of `topics` from the beginning into `messages`.
 * `waitForMessages(n)` polls until n arrived.
 */
export async function collectMessages(
  topics: string[],
  opts: { brokers?: string[] } = {},
): Promise<{
  messages: Collected[];
  waitForMessages: (n: number, timeoutMs?: number) => Promise<Collected[]>;
  stop: () => Promise<void>;
}> {
  const kafka = new Kafka({
    brokers: opts.brokers ?? testBrokers(),
    clientId: 'test-collector',
    logLevel: logLevel.NOTHING,
  });
  const consumer: Consumer = kafka.consumer({
    groupId: `collector-${randomBytes(6).toString('hex')}`,
    sessionTimeout: 10_000,
    heartbeatInterval: 1_000,
  });
  const messages: Collected[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ topic, partition, message }) => {
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(message.headers ?? {})) if (v !== undefined) headers[k] = String(v);
      messages.push({
        topic,
        partition,
        key: message.key?.toString() ?? null,
        value: message.value?.toString() ?? null,
        headers,
        message,
      });
    },
  });
  return {
    messages,
    waitForMessages: async (n, timeoutMs = 30_000) => {
      await waitFor(() => messages.length >= n, {
        timeoutMs,
        message: `expected ${n} messages on ${topics.join(',')}, have ${messages.length}`,
      });
      return messages;
    },
    stop: () => consumer.disconnect(),
  };
}
