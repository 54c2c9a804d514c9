import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import type { Pool } from '@shared/db';
import { createIdempotentProducer } from '@shared/idempotent-producer';
import type { Logger } from '@shared/logger';
import type { Component } from '@shared/lifecycle';
import { topicNames } from '@shared/topics';
import { keyringFromConfig } from '@shared/payload-crypto';
import type { MailerConfig } from './config';
import type { MailTransport, ProviderTransport } from './data-access/mail-transport';
import { releaseClaims } from './data-access/attempt-outcomes';
import { claimDueRequests, countRetryPending } from './data-access/requests-repository';
import { createDeliverRequest } from './domain/deliver-request';
import { createDeferWhileOpen } from './domain/defer-while-open';
import { createProviderFailover, type ProviderFailover } from './domain/provider-failover';
import { createRecordMailRequests } from './domain/record-mail-requests';
import { CIRCUIT_STATE_VALUE, createSmtpCircuit, type CircuitState } from './domain/smtp-circuit';
import { createDispatcher, type Dispatcher } from './entry-points/dispatcher';
import { createMailRequestsConsumer, type MailRequestsConsumer } from './entry-points/mail-requests-consumer';
import { createRetentionJob, type RetentionJob } from './entry-points/retention-job';
import { createStatusPublisher, type StatusPublisher } from './entry-points/status-publisher';
import { mailerComponents } from './mailer-components';
import { createMailerMetrics, type MailerMetrics } from './metrics';

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
 * timeouts covers a slow but live send (after at most one spent waiting in the dispatcher's local
 * queue, see maxQueueMs) and the group commit of its outcome, so only a dead mailer's rows are taken back.
 */
export const sendLeaseMs = (config: Pick<MailerConfig, 'SMTP_TIMEOUT_MS'>): number => 10 * config.SMTP_TIMEOUT_MS;

type Parts = { logger: Logger; clock: () => Date; metrics: MailerMetrics; publisher: StatusPublisher };

/** One breaker per provider (the primary first, then SMTP_FALLBACK_URLS' in order), and the failover across them. */
function createProviders(transports: ProviderTransport[], deps: MailerDeps, logger: Logger) {
  const providers = transports.map((p) => ({
    label: p.label,
    circuit: createSmtpCircuit({ transport: p.transport, config: deps.config, logger, label: p.label }),
  }));
  return { providers, failover: createProviderFailover(providers) };
}

/** Statuses and DLQ records: one idempotent producer keeper, replaced after any failed send. */
function createPublisher(deps: MailerDeps, logger: Logger): StatusPublisher {
  const producer = createIdempotentProducer({ kafka: deps.kafka, logger });
  return createStatusPublisher({
    pool: deps.pool,
    producer,
    topics: topicNames(deps.config.KAFKA_TOPIC_PREFIX),
    logger,
    ...(deps.sweepMs !== undefined ? { sweepMs: deps.sweepMs } : {}),
  });
}

function createRetention(deps: MailerDeps, logger: Logger): RetentionJob {
  return createRetentionJob({
    pool: deps.pool,
    retentionDays: deps.config.MAIL_RETENTION_DAYS,
    logger,
    ...(deps.retentionEveryMs !== undefined ? { everyMs: deps.retentionEveryMs } : {}),
  });
}

/** The dispatcher claims due requests in batches and delivers each through the failover. */
function createDelivery(deps: MailerDeps, parts: Parts, failover: ProviderFailover): Dispatcher {
  const { config, pool } = deps;
  const { logger, clock, metrics, publisher } = parts;
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
        'MAIL_PAYLOAD_KEY is not set: using a random per-process key; ' +
          'codes sealed by accounts cannot be opened (development only)',
      ),
    ),
  });
  const leaseMs = sendLeaseMs(config);
  return createDispatcher({
    claims: {
      claim: (limit) => claimDueRequests(pool, { limit, leaseMs }),
      release: (claims) => releaseClaims(pool, claims),
    },
    deliver,
    circuitState: failover.state,
    nextAdmitAt: failover.nextAdmitAt,
    deferWhileOpen: createDeferWhileOpen({ pool, metrics, logger, clock, onOutboxWritten: () => publisher.kick() }),
    concurrency: config.SMTP_POOL_SIZE,
    // A row claimed ahead waits at most one SMTP timeout for a connection: nine of its ten are left for the send.
    maxQueueMs: config.SMTP_TIMEOUT_MS,
    pollMs: deps.pollMs ?? Math.min(1_000, Math.max(50, config.MAIL_RETRY_BASE_MS)),
    logger,
  });
}

/** The consumer records each mail request, then wakes the dispatcher and the publisher if they have work. */
function createIntake(deps: MailerDeps, parts: Parts, dispatcher: Dispatcher): MailRequestsConsumer {
  const { logger, clock, metrics, publisher } = parts;
  const record = createRecordMailRequests({
    pool: deps.pool,
    metrics,
    logger,
    clock,
    // Rows claimed at intake are already with the dispatcher: a kick would only look for more.
    onRecorded: ({ pending, outboxEvents }) => {
      if (pending > 0) dispatcher.kick();
      if (outboxEvents > 0) publisher.kick();
    },
    claimAtIntake: { room: dispatcher.room, adopt: dispatcher.adopt, leaseMs: sendLeaseMs(deps.config) },
  });
  return createMailRequestsConsumer({
    kafka: deps.kafka,
    groupId: `${deps.config.KAFKA_TOPIC_PREFIX}mailer`,
    topic: topicNames(deps.config.KAFKA_TOPIC_PREFIX).mailRequests,
    record,
    partitions: deps.config.KAFKA_TOPIC_PARTITIONS,
    logger,
  });
}

/** Wires one mailer instance from explicit dependencies: no module state, two can share a process. */
export function createMailer(deps: MailerDeps): Mailer {
  const logger = deps.logger.child({ component: 'mailer' });
  const clock = deps.clock ?? (() => new Date());
  const providerTransports: ProviderTransport[] = [
    { label: 'primary', transport: deps.transport },
    ...(deps.fallbacks ?? []),
  ];
  const metrics = createMailerMetrics(
    deps.registry,
    () => countRetryPending(deps.pool),
    providerTransports.map((p) => p.label),
  );
  const publisher = createPublisher(deps, logger);
  const parts: Parts = { logger, clock, metrics, publisher };
  const retention = createRetention(deps, logger);
  const { providers, failover } = createProviders(providerTransports, deps, logger);
  const dispatcher = createDelivery(deps, parts, failover);
  const consumer = createIntake(deps, parts, dispatcher);

  // The consumer keeps recording while every breaker is open: a request must get its honest
  // `deferred` / circuit_open status (and the next trial time) instead of waiting unseen in Kafka.
  failover.onStateChange((label, state) => {
    metrics.setCircuitState(label, CIRCUIT_STATE_VALUE[state]);
    metrics.setFallbackActive(failover.onFallback());
    dispatcher.kick();
  });

  const components = mailerComponents({
    kafka: deps.kafka,
    config: deps.config,
    publisher,
    dispatcher,
    retention,
    consumer,
  });
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
