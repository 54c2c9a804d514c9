import { createBackgroundWork } from './domain/background-work';
import { createMailOutage } from './domain/mail-outage';
import { keyringFromConfig } from '@shared/payload-crypto';
import { randomBytes } from 'node:crypto';
import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import { checkDatabaseReady, type Pool } from '@shared/db';
import { createOpsApp, httpComponent } from '@shared/http';
import type { Component } from '@shared/lifecycle';
import type { Logger } from '@shared/logger';
import type { AccountsConfig } from './config';
import { systemClock, type Clock } from './domain/clock';
import { loadCommonPasswords } from './domain/common-passwords';
import type { DomainDeps } from './domain/deps';
import { createArgon2Hasher } from './domain/password-hasher';
import { createTokenService } from './domain/token-service';
import { createHousekeeping } from './entry-points/housekeeping';
import { createAccountsApp } from './entry-points/http/app';
import { createDeliveryStatusConsumer } from './entry-points/kafka/delivery-status-consumer';
import { createAccountsMetrics } from './metrics';

export type Accounts = {
  /** In start order (stopped in reverse): pool, background work, housekeeping, Kafka, ops HTTP, API HTTP. */
  components: Component[];
  start: () => Promise<void>;
  stop: () => Promise<void>;
};

/**
 * Wires one accounts instance from explicit dependencies (main.ts makes them from the config): the
 * public API, the ops listener, the delivery-status consumer and the housekeeping job, with the order
 * they start and stop in.
 */
export function createAccounts(opts: {
  config: AccountsConfig;
  logger: Logger;
  registry: Registry;
  pool: Pool;
  kafka: Kafka;
}): Accounts {
  const { config, logger, registry, pool } = opts;
  const deps = createDomainDeps({ config, logger, registry, pool });
  const admin = opts.kafka.admin();
  const consumer = createDeliveryStatusConsumer({
    ...deps,
    kafka: opts.kafka,
    admin,
    topicPrefix: config.KAFKA_TOPIC_PREFIX,
    partitions: config.KAFKA_TOPIC_PARTITIONS,
    replicationFactor: config.KAFKA_REPLICATION_FACTOR,
  });
  const housekeeping = createHousekeeping({
    pool,
    logger,
    config: {
      intervalS: config.HOUSEKEEPING_INTERVAL_S,
      processedEventsRetentionS: config.PROCESSED_EVENTS_RETENTION_DAYS * 86_400,
      loginFailureWindowS: config.LOGIN_FAILURE_WINDOW_S,
    },
  });
  const components: Component[] = [
    { name: 'pool', stop: () => pool.end() },
    // Stopped after HTTP and the consumer, before the pool: an anonymous resend answered 202 finishes.
    { name: 'background-work', stop: () => deps.background.drain() },
    { name: 'housekeeping', start: () => housekeeping.start(), stop: () => housekeeping.stop() },
    // Connected by the consumer in the background (it also ensures the topic exists): the API must
    // start and take registrations while Kafka is down.
    { name: 'kafka-admin', stop: () => admin.disconnect() },
    { name: 'delivery-status-consumer', start: () => consumer.start(), stop: () => consumer.stop() },
    httpComponent({
      name: 'ops-http',
      port: config.OPS_PORT,
      host: config.OPS_HOST,
      // Readiness is PostgreSQL only: registration does not need Kafka, so a broker outage must
      // not take the API out of a load balancer.
      createApp: () =>
        createOpsApp({ logger, registry, checks: [{ name: 'postgres', check: () => checkDatabaseReady(pool) }] }),
      onListening: (ops) =>
        logger.info({ port: ops.port, host: config.OPS_HOST }, 'accounts ops listening (/metrics, /readyz, /healthz)'),
    }),
    httpComponent({
      name: 'http',
      port: config.PORT,
      createApp: () => createAccountsApp({ ...deps, registry }),
      onListening: (http) => logger.info({ port: http.port }, 'accounts listening'),
    }),
  ];
  return {
    components,
    start: async () => {
      for (const c of components) await c.start?.();
    },
    stop: async () => {
      for (const c of [...components].reverse()) await c.stop();
    },
  };
}

/**
 * Builds the use cases' dependencies from the config: what main.ts, the tests and the benchmark
 * share, so all three run the same wiring.
 */
export function createDomainDeps(opts: {
  config: AccountsConfig;
  logger: Logger;
  registry: Registry;
  pool: Pool;
  clock?: Clock;
}): DomainDeps & {
  commonPasswords: ReadonlySet<string>;
} {
  const { config, logger } = opts;
  const clock = opts.clock ?? systemClock;
  let secret = config.JWT_SECRET;
  if (secret === undefined) {
    // Development only (the config requires JWT_SECRET in production): tokens die with the process,
    // and two instances must be given the same JWT_SECRET to accept each other's tokens.
    secret = randomBytes(48).toString('base64url');
    logger.warn('JWT_SECRET is not set: using a random per-process secret (development only)');
  }
  return {
    pool: opts.pool,
    clock,
    config,
    logger,
    metrics: createAccountsMetrics(opts.registry),
    hasher: createArgon2Hasher({
      memoryKib: config.ARGON2_MEMORY_KIB,
      timeCost: config.ARGON2_TIME_COST,
      parallelism: config.ARGON2_PARALLELISM,
    }),
    tokens: createTokenService(
      {
        secret,
        issuer: config.JWT_ISSUER,
        audience: config.JWT_AUDIENCE,
        accessTtlS: config.JWT_ACCESS_TTL,
        refreshTtlS: config.JWT_REFRESH_TTL,
      },
      clock,
    ),
    commonPasswords: loadCommonPasswords(),
    background: createBackgroundWork(),
    mailOutage: createMailOutage(clock),
    payloadKeys: keyringFromConfig(config, () =>
      logger.warn(
        'MAIL_PAYLOAD_KEY is not set: using a random per-process key; ' +
          'a mailer started separately cannot read the codes (development only)',
      ),
    ),
  };
}
