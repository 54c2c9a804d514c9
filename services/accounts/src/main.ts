import { createLogger } from '@shared/logger';
import { createPool, checkDatabaseReady } from '@shared/db';
import { createKafka } from '@shared/kafka';
import { createMetricsRegistry } from '@shared/metrics';
import { createOpsApp, listen, type HttpServer } from '@shared/http';
import { runService } from '@shared/lifecycle';
import { loadAccountsConfig } from './config';
import { createDomainDeps } from './accounts';
import { createAccountsApp } from './entry-points/http/app';
import { createDeliveryStatusConsumer } from './entry-points/kafka/delivery-status-consumer';
import { createHousekeeping } from './entry-points/housekeeping';

async function main(): Promise<void> {
  const config = loadAccountsConfig();
  const logger = createLogger({ service: 'accounts', level: config.LOG_LEVEL });
  const registry = createMetricsRegistry('accounts');
  const pool = createPool({ connectionString: config.DATABASE_URL, logger, applicationName: 'accounts', connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS, statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS, max: config.DB_POOL_MAX });
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: 'accounts', logger, security: config });
  const admin = kafka.admin();
  const deps = createDomainDeps({ config, logger, registry, pool });
  const consumer = createDeliveryStatusConsumer({
    ...deps,
    kafka,
    admin,
    topicPrefix: config.KAFKA_TOPIC_PREFIX,
    partitions: config.KAFKA_TOPIC_PARTITIONS,
    replicationFactor: config.KAFKA_REPLICATION_FACTOR,
  });
  const housekeeping = createHousekeeping({
    pool,
    logger,
    config: { intervalS: config.HOUSEKEEPING_INTERVAL_S, processedEventsRetentionS: config.PROCESSED_EVENTS_RETENTION_DAYS * 86_400, loginFailureWindowS: config.LOGIN_FAILURE_WINDOW_S },
  });
  let http: HttpServer | undefined;
  let ops: HttpServer | undefined;

  await runService({
    logger,
    components: [
      { name: 'pool', stop: () => pool.end() },
      // Stopped after HTTP and the consumer, before the pool: an anonymous resend answered 202 finishes.
      { name: 'background-work', stop: () => deps.background.drain() },
      { name: 'housekeeping', start: () => housekeeping.start(), stop: () => housekeeping.stop() },
      // Connected by the consumer in the background (it also ensures the topic exists): the API must
      // start and take registrations while Kafka is down.
      { name: 'kafka-admin', stop: () => admin.disconnect() },
      { name: 'delivery-status-consumer', start: () => consumer.start(), stop: () => consumer.stop() },
      {
        name: 'ops-http',
        start: async () => {
          // Readiness is PostgreSQL only: registration does not need Kafka, so a broker outage must
          // not take the API out of a load balancer.
          const app = createOpsApp({ logger, registry, checks: [{ name: 'postgres', check: () => checkDatabaseReady(pool) }] });
          ops = await listen(app, config.OPS_PORT, config.OPS_HOST);
          logger.info({ port: ops.port, host: config.OPS_HOST }, 'accounts ops listening (/metrics, /readyz, /healthz)');
        },
        stop: async () => ops?.close(),
      },
      {
        name: 'http',
        start: async () => {
          http = await listen(createAccountsApp({ ...deps, registry }), config.PORT);
          logger.info({ port: http.port }, 'accounts listening');
        },
        stop: async () => http?.close(),
      },
    ],
  });
}

void main();
