import net from 'node:net';
import tls from 'node:tls';
import {
  Kafka,
  logLevel,
  type LogEntry,
  type Admin,
  type ISocketFactory,
  type ITopicConfig,
  type SASLOptions,
} from 'kafkajs';
import type { Logger } from './logger';
import { waitForTopicLeaders } from './topic-leaders';
import { applyKafkajsIdleFix } from './kafkajs-idle-fix';

/** Patched once, before any client exists; false when kafkajs' internals changed (each client warns). */
const idleFixApplied = applyKafkajsIdleFix();

const LEVELS: Record<number, 'error' | 'warn' | 'info' | 'debug'> = {
  [logLevel.NOTHING]: 'debug',
  [logLevel.ERROR]: 'error',
  [logLevel.WARN]: 'warn',
  [logLevel.INFO]: 'info',
  [logLevel.DEBUG]: 'debug',
};

/**
 * Consumer-group timing for every long-running consumer (mailer, accounts), chosen so that a killed
 * member or a crashed broker stalls its partitions for seconds, not the 30-60 s of kafkajs' defaults:
 *  - sessionTimeout 8 s: a SIGKILLed member is evicted 8 s after its last heartbeat (the broker's
 *    group.min.session.timeout.ms is 6 s). After a broker restart the coordinator reloads the old
 *    members from __consumer_offsets and evicts the ones that never come back after this long too.
 *  - heartbeatInterval 1 s and maxWaitTimeInMs 1 s: kafkajs 2.2.4 heartbeats between fetches, so an idle
 *    fetch must return within a second for a member to learn of a rebalance quickly.
 *  - rebalanceTimeout 10 s: how long the coordinator waits for known members to rejoin before it
 *    completes a rebalance without them (default 60 s: one member gone for good stalls everyone).
 * kafkajs 2.2.4 offers neither static membership (group.instance.id) nor cooperative rebalancing, so
 * these timeouts are the only levers.
 */
export const CONSUMER_TIMING = {
  sessionTimeout: 8_000,
  heartbeatInterval: 1_000,
  rebalanceTimeout: 10_000,
  maxWaitTimeInMs: 1_000,
} as const;

/** The KAFKA_SSL / KAFKA_SASL_* settings of a parsed service config. */
export type KafkaSecurityConfig = {
  KAFKA_SSL?: boolean;
  KAFKA_SASL_MECHANISM?: 'plain' | 'scram-sha-256' | 'scram-sha-512' | undefined;
  KAFKA_SASL_USERNAME?: string | undefined;
  KAFKA_SASL_PASSWORD?: string | undefined;
};

/** kafkajs' `ssl` and `sasl` options for a config (the config check guarantees all SASL fields or none). */
export function kafkaSecurity(config: KafkaSecurityConfig): { ssl: boolean; sasl?: SASLOptions } {
  const { KAFKA_SASL_MECHANISM: mechanism, KAFKA_SASL_USERNAME: username, KAFKA_SASL_PASSWORD: password } = config;
  const ssl = config.KAFKA_SSL === true;
  if (!mechanism || username === undefined || password === undefined) return { ssl };
  return { ssl, sasl: { mechanism, username, password } as SASLOptions };
}

/**
 * kafkajs' own socket factory plus TCP_NODELAY, which kafkajs 2.2.4 never sets (pg does). A request is
 * one write, but requests share a connection per broker (a long-polling fetch, then a heartbeat or an
 * offset commit on the same socket): without no-delay, such a second request can wait for the
 * broker's delayed ACK of the first (Nagle, ~40 ms; FIELD-NOTES).
 */
export const noDelaySocketFactory: ISocketFactory = ({ host, port, ssl, onConnect }) => {
  const socket = ssl
    ? tls.connect({ host, port, ...(!net.isIP(host) ? { servername: host } : {}), ...ssl }, onConnect)
    : net.connect({ host, port }, onConnect);
  socket.setKeepAlive(true, 60_000);
  socket.setNoDelay(true);
  return socket;
};

/**
 * A kafkajs client whose own log lines go through our structured logger (one JSON line each), with
 * the service's TLS and SASL settings when `security` is given (KAFKA_SSL, KAFKA_SASL_*).
 */
export function createKafka(opts: {
  brokers: readonly string[];
  clientId: string;
  logger: Logger;
  connectionTimeout?: number;
  security?: KafkaSecurityConfig;
}): Kafka {
  const log = opts.logger.child({ component: 'kafkajs' });
  if (!idleFixApplied)
    log.warn('kafkajs internals changed: its idle timer loop and 100 ms request-timeout poll run unpatched');
  const security = kafkaSecurity(opts.security ?? {});
  opts.logger.info(
    {
      kafka_brokers: opts.brokers.join(','),
      kafka_ssl: security.ssl,
      kafka_sasl_mechanism: security.sasl?.mechanism ?? null,
    },
    'Kafka bootstrap brokers',
  );
  return new Kafka({
    clientId: opts.clientId,
    brokers: [...opts.brokers],
    ...security,
    socketFactory: noDelaySocketFactory,
    connectionTimeout: opts.connectionTimeout ?? 3_000,
    requestTimeout: 30_000,
    // Our own loops own retries (backoff with jitter, metrics); kafkajs retries briefly underneath.
    retry: { initialRetryTime: 300, retries: 5, maxRetryTime: 5_000 },
    logLevel: logLevel.WARN,
    logCreator:
      () =>
      ({ level, log: entry }: LogEntry) => {
        const {
          message,
          timestamp: _timestamp,
          logger: _logger,
          ...rest
        } = entry as LogEntry['log'] & { logger?: string };
        log[LEVELS[level] ?? 'info'](rest, message);
      },
  });
}

/** min.insync.replicas for a replication factor: 2 of 3 (one broker may die under acks=all), else 1. */
export function minInsyncReplicas(replicationFactor: number): number {
  return replicationFactor >= 3 ? 2 : 1;
}

/**
 * Creates missing topics (idempotent; several instances may race, which kafkajs reports as
 * "already exists" and we accept). A topic without a replication factor (or 0) follows the cluster:
 * min(3, brokers in the cluster). Every created topic gets min.insync.replicas for its replication
 * (2 of 3) and unclean leader election off, unless the caller names those configs itself.
 */
export async function ensureTopics(admin: Admin, topics: ITopicConfig[]): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const missing = topics.filter((t) => !existing.has(t.topic));
  if (missing.length === 0) return;
  const followCluster = missing.some((t) => !t.replicationFactor || t.replicationFactor <= 0);
  const clusterSize = followCluster ? (await admin.describeCluster()).brokers.length : 0;
  const withReplication = missing.map((t) => {
    const replicationFactor =
      t.replicationFactor && t.replicationFactor > 0 ? t.replicationFactor : Math.max(1, Math.min(3, clusterSize));
    const given = new Set((t.configEntries ?? []).map((c) => c.name));
    const defaults = [
      { name: 'min.insync.replicas', value: String(minInsyncReplicas(replicationFactor)) },
      { name: 'unclean.leader.election.enable', value: 'false' },
    ].filter((c) => !given.has(c.name));
    return { ...t, replicationFactor, configEntries: [...(t.configEntries ?? []), ...defaults] };
  });
  try {
    await admin.createTopics({ topics: withReplication, waitForLeaders: false });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (!/already exists/i.test(message)) throw err;
  }
  // Not kafkajs' waitForLeaders: it fails on the UNKNOWN_TOPIC_OR_PARTITION a broker answers right after creation.
  await waitForTopicLeaders(
    admin,
    missing.map((t) => t.topic),
  );
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
