import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { Pool } from '@shared/db';
import { createIdempotentProducer } from '@shared/idempotent-producer';
import { ensureTopics } from '@shared/kafka';
import type { Logger } from '@shared/logger';
import type { Component } from '@shared/lifecycle';
import { contractTopicConfigs, topicNames } from '@shared/topics';
import { keyringFromConfig } from '@shared/payload-crypto';
import type { MailerConfig } from './config';
import type { MailTransport, ProviderTransport } from './data-access/mail-transport';
import { countRetryPending } from './data-access/requests-repository';
import { createDeliverRequest } from './domain/deliver-request';
import { createDeferWhileOpen } from './domain/defer-while-open';
import { createProviderFailover } from './domain/provider-failover';
import { createRecordMailRequests } from './domain/record-mail-requests';
import { CIRCUIT_STATE_VALUE, createSmtpCircuit, type CircuitState } from './domain/smtp-circuit';
import { createDispatcher } from './entry-points/dispatcher';
import { createMailRequestsConsumer } from './entry-points/mail-requests-consumer';
import { createRetentionJob } from './entry-points/retention-job';
import { createStatusPublisher } from './entry-points/status-publisher';
import { createMailerMetrics } from './metrics';

export type MailerDeps = {
  pool: Pool;
  kafka: Kafka;
  /** The primary provider's transport. */
  transport: MailTransport;
  /** SMTP_FALLBACK_URLS' providers, tried in order after the primary (see createFallbackTransports). */
  fallbacks?: ProviderTransport[];
  logger: Logger;
  registry: Registry;
  config: MailerConfig;
  clock?: () => Date;
  random?: () => number;
  /** How often the dispatcher looks for retries that came due (it is also woken on every event). */
  pollMs?: number;
  /** How often leftover statuses are republished. */
  sweepMs?: number;
  /** How often finished requests past MAIL_RETENTION_DAYS are deleted (default 5 minutes). */
  retentionEveryMs?: number;
};

export type Mailer = {
  /** In start order: producer + status publisher, dispatcher, consumer (stop in reverse). */
  components: { producer: Component; dispatcher: Component; consumer: Component };
  start: () => Promise<void>;
  stop: () => Promise<void>;
  /** Across providers: closed when one admits mail freely, open when every breaker is open. */
  circuitState: () => CircuitState;
  /** One provider's breaker. */
  providerState: (label: string) => CircuitState | undefined;
};

/**
 * How long a claimed row may stay `sending` before another instance takes it back. One attempt is
 * bounded by nodemailer's timeouts (connect, greeting, then socket inactivity per command); ten
 * timeouts covers a slow but live send, so only a dead mailer's rows are taken back.
 */
export const sendLeaseMs = (config: Pick<MailerConfig, 'SMTP_TIMEOUT_MS'>): number => 10 * config.SMTP_TIMEOUT_MS;

/** Wires one mailer instance from explicit dependencies: no module state, two can share a process. */
export function createMailer(deps: MailerDeps): Mailer {
  const { config, pool, kafka } = deps;
  const logger = deps.logger.child({ component: 'mailer' });
  const clock = deps.clock ?? (() => new Date());
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const providerTransports: ProviderTransport[] = [
    { label: 'primary', transport: deps.transport },
    ...(deps.fallbacks ?? []),
  ];
  const metrics = createMailerMetrics(
    deps.registry,
    () => countRetryPending(pool),
    providerTransports.map((p) => p.label),
  );
  // Statuses and DLQ records: one idempotent producer keeper, replaced after any failed send.
  const producer = createIdempotentProducer({ kafka, logger });
  const publisher = createStatusPublisher({
    pool,
    producer,
    topics,
    logger,
    ...(deps.sweepMs !== undefined ? { sweepMs: deps.sweepMs } : {}),
  });
  const retention = createRetentionJob({
    pool,
    retentionDays: config.MAIL_RETENTION_DAYS,
    logger,
    ...(deps.retentionEveryMs !== undefined ? { everyMs: deps.retentionEveryMs } : {}),
  });
  const providers = providerTransports.map((p) => ({
    label: p.label,
    circuit: createSmtpCircuit({ transport: p.transport, config, logger, label: p.label }),
  }));
  const failover = createProviderFailover(providers);
  const deliver = createDeliverRequest({
    pool,
    failover,
    config,
    metrics,
    logger,
    clock,
    random: deps.random ?? Math.random,
    onOutboxWritten: () => publisher.kick(),
    payloadKeys: keyringFromConfig(config, () =>
      logger.warn(
        'MAIL_PAYLOAD_KEY is not set: using a random per-process key; codes sealed by accounts cannot be opened (development only)',
      ),
    ),
  });
  const dispatcher = createDispatcher({
    pool,
    deliver,
    circuitState: failover.state,
    nextAdmitAt: failover.nextAdmitAt,
    deferWhileOpen: createDeferWhileOpen({ pool, metrics, logger, clock, onOutboxWritten: () => publisher.kick() }),
    concurrency: config.SMTP_POOL_SIZE,
    leaseMs: sendLeaseMs(config),
    pollMs: deps.pollMs ?? Math.min(1_000, Math.max(50, config.MAIL_RETRY_BASE_MS)),
    logger,
  });
  const record = createRecordMailRequests({
    pool,
    metrics,
    logger,
    clock,
    onRecorded: () => {
      dispatcher.kick();
      publisher.kick();
    },
  });
  const consumer = createMailRequestsConsumer({
    kafka,
    groupId: `${config.KAFKA_TOPIC_PREFIX}mailer`,
    topic: topics.mailRequests,
    record,
    logger,
  });

  // The consumer keeps recording while every breaker is open: a request must get its honest
  // `deferred` / circuit_open status (and the next trial time) instead of waiting unseen in Kafka.
  failover.onStateChange((label, state) => {
    metrics.setCircuitState(label, CIRCUIT_STATE_VALUE[state]);
    metrics.setFallbackActive(failover.onFallback());
    dispatcher.kick();
  });

  const components = {
    producer: {
      name: 'producer',
      start: async () => {
        const admin = kafka.admin();
        await admin.connect();
        try {
          await ensureTopics(
            admin,
            contractTopicConfigs(config.KAFKA_TOPIC_PREFIX, {
              partitions: config.KAFKA_TOPIC_PARTITIONS,
              replicationFactor: config.KAFKA_REPLICATION_FACTOR,
            }),
          );
        } finally {
          await admin.disconnect();
        }
        await publisher.connect();
        // Statuses left by a previous run (a crash, a Kafka outage) go out first.
        await publisher.start();
      },
      stop: async () => {
        await publisher.stop();
      },
    },
    dispatcher: {
      name: 'dispatcher',
      start: async () => {
        await dispatcher.start();
        await retention.start();
      },
      stop: async () => {
        await retention.stop();
        await dispatcher.stop();
      },
    },
    consumer: { name: 'consumer', start: () => consumer.start(), stop: () => consumer.stop() },
  } satisfies Mailer['components'];
  const inOrder: Component[] = [components.producer, components.dispatcher, components.consumer];

  return {
    components,
    start: async () => {
      for (const c of inOrder) await c.start?.();
    },
    stop: async () => {
      for (const c of [...inOrder].reverse()) await c.stop();
      failover.shutdown();
    },
    circuitState: failover.state,
    providerState: (label) => providers.find((p) => p.label === label)?.circuit.state(),
  };
}
