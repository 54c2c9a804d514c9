import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { Registry } from 'prom-client';
import { Kafka, logLevel } from 'kafkajs';
import { createKafka } from '@shared/kafka';
import { topicNames } from '@shared/topics';
import { waitFor } from '../../../test/support/wait-for';
import { createLogger } from '@shared/logger';
import { createMetricsRegistry } from '@shared/metrics';
import { parseRelayConfig, type RelayConfig } from '../src/config';
import { createRelay, type Relay } from '../src/relay';

/** Starts a relay in this process against a test database and broker (several may run at once). */
export async function startTestRelay(opts: {
  databaseUrl: string;
  pool: pg.Pool;
  brokers: string[];
  prefix: string;
  env?: Record<string, string>;
}): Promise<{
  relay: Relay;
  registry: Registry;
  config: RelayConfig;
  stop: () => Promise<void>;
}> {
  const config = parseRelayConfig({
    DATABASE_URL: opts.databaseUrl,
    KAFKA_BROKERS: opts.brokers.join(','),
    KAFKA_TOPIC_PREFIX: opts.prefix,
    KAFKA_TOPIC_PARTITIONS: '3',
    RELAY_RETRY_BASE_MS: '50',
    RELAY_RETRY_MAX_MS: '1000',
    RELAY_GAUGE_INTERVAL_MS: '200',
    ...opts.env,
  });
  const logger = createLogger({ service: 'relay', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const registry = createMetricsRegistry('relay');
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: 'relay-test', logger });
  const relay = createRelay({ pool: opts.pool, kafka, logger, registry, config });
  await relay.start();
  await waitForTopics(config.KAFKA_BROKERS, Object.values(topicNames(opts.prefix)));
  return { relay, registry, config, stop: () => relay.stop() };
}

export type TestOutboxRow = {
  key: string;
  seq: number;
  topic?: string;
  payload?: unknown;
  headers?: Record<string, unknown>;
};

/** Inserts outbox rows in one transaction, as the accounts service does (the trigger NOTIFYs at commit). */
export async function insertOutboxRows(pool: pg.Pool, rows: TestOutboxRow[]): Promise<string[]> {
  const eventIds = rows.map(() => randomUUID());
  await pool.query(
    `INSERT INTO outbox (event_id, topic, key, type, aggregate_type, occurred_at, payload, headers)
     SELECT e, t, k, 'user.registered', 'user', now(), p, h
     FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[]) WITH ORDINALITY AS r(e, t, k, p, h, n)
     ORDER BY n`,
    [
      eventIds,
      rows.map((r) => r.topic ?? 'accounts.user-events'),
      rows.map((r) => r.key),
      rows.map((r) => JSON.stringify(r.payload ?? { seq: r.seq })),
      rows.map((r) => JSON.stringify(r.headers ?? {})),
    ],
  );
  return eventIds;
}

export async function outboxCount(pool: pg.Pool): Promise<number> {
  const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
  return rows[0]?.n ?? 0;
}

/** A metric's value from a registry (0 when the series does not exist). */
export async function metricValue(
  registry: Registry,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const match = values.find((v) =>
    Object.entries(labels).every(([k, want]) => String(v.labels[k as keyof typeof v.labels]) === want),
  );
  return match?.value ?? 0;
}

/**
 * Checks the relay's ordering promise on what a consumer saw: per key, the first occurrences of the
 * sequence numbers come in increasing order (duplicates allowed, reordering not), and every number
 * from 0 to count-1 arrived. Returns a list of problems (empty when all is well).
 */
export function orderingProblems(
  messages: { key: string | null; value: string | null }[],
  expectedPerKey: Map<string, number>,
): string[] {
  const seen = new Map<string, { set: Set<number>; last: number }>();
  const problems: string[] = [];
  for (const m of messages) {
    if (m.key === null || m.value === null) continue;
    const seq = (JSON.parse(m.value) as { payload: { seq: number } }).payload.seq;
    const state = seen.get(m.key) ?? { set: new Set<number>(), last: -1 };
    seen.set(m.key, state);
    if (state.set.has(seq)) continue;
    if (seq < state.last) problems.push(`key ${m.key}: seq ${seq} first seen after ${state.last}`);
    state.set.add(seq);
    state.last = Math.max(state.last, seq);
  }
  for (const [key, count] of expectedPerKey) {
    const got = seen.get(key)?.set.size ?? 0;
    if (got !== count) problems.push(`key ${key}: ${got} of ${count} rows arrived`);
  }
  return problems;
}

/** Waits until the relay created the contract topics (so a consumer can subscribe to them). */
async function waitForTopics(brokers: readonly string[], topics: string[]): Promise<void> {
  const admin = new Kafka({ brokers: [...brokers], clientId: 'relay-test-admin', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await waitFor(
      async () => {
        const existing = new Set(await admin.listTopics());
        return topics.every((t) => existing.has(t));
      },
      { timeoutMs: 30_000, message: `relay created ${topics.join(', ')}` },
    );
  } finally {
    await admin.disconnect();
  }
}
