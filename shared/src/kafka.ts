import { Kafka, logLevel, type LogEntry, type Admin, type ITopicConfig } from 'kafkajs';
import type { Logger } from './logger';

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.NOTHING]: 'debug',
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/** A kafkajs client whose own log lines go through our structured logger (one JSON line each). */
export function createKafka(opts: { brokers: readonly string[]; clientId: string; logger: Logger; connectionTimeout?: number }): Kafka {
  const log = opts.logger.child({ component: 'kafkajs' });
  return new Kafka({
    clientId: opts.clientId,
    brokers: [...opts.brokers],
    connectionTimeout: opts.connectionTimeout ?? 3_000,
    requestTimeout: 30_000,
    // Our own loops own retries (backoff with jitter, metrics); kafkajs retries briefly underneath.
    retry: { initialRetryTime: 300, retries: 5, maxRetryTime: 5_000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const { message, timestamp: _timestamp, logger: _logger, ...rest } = entry as LogEntry['log'] & { logger?: string };
        log[LEVELS[level] ?? 'info'](rest, message);
      },
  });
}

/**
 * Creates missing topics (idempotent; several instances may race, which kafkajs reports as
 * "already exists" and we accept).
 */
export async function ensureTopics(admin: Admin, topics: ITopicConfig[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t.topic));
  if (missing.length === 0) return;
  try {
    await admin.createTopics({ topics: missing, waitForLeaders: true });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (!/already exists/i.test(message)) throw err;
  }
}

/** Readiness probe: the broker answers a metadata request. */
export async function checkKafkaReady(admin: Admin): Promise<void> {
  try {
    await admin.describeCluster();
  } catch {
    // The admin may never have connected (the broker was down at start): connect, then ask again.
    await admin.connect();
    await admin.describeCluster();
  }
}
