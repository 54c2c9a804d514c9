import type { Kafka } from 'kafkajs';
import type { Registry } from 'prom-client';
import { createPool, type Pool } from './db';
import { createKafka, type KafkaSecurityConfig } from './kafka';
import { createLogger, type Logger } from './logger';
import { createMetricsRegistry } from './metrics';

/** The settings every service shares (see commonSettings in config.ts). */
export type ServiceBaseConfig = KafkaSecurityConfig & {
  LOG_LEVEL: string;
  KAFKA_BROKERS: readonly string[];
  DB_CONNECT_TIMEOUT_MS: number;
  DB_STATEMENT_TIMEOUT_MS: number;
};

export type ServiceBase = { logger: Logger; registry: Registry; pool: Pool; kafka: Kafka };

/**
 * What each service's main.ts creates first, the same way in all three: its JSON logger, its metrics
 * registry, a PostgreSQL pool with bounded waits on the service's own database, and a Kafka client with
 * the service's TLS/SASL settings. Created here, passed down: no module holds a connection.
 */
export function createServiceBase(opts: {
  service: string;
  config: ServiceBaseConfig;
  databaseUrl: string;
  poolMax?: number;
}): ServiceBase {
  const { service, config } = opts;
  const logger = createLogger({ service, level: config.LOG_LEVEL });
  const registry = createMetricsRegistry(service);
  const pool = createPool({
    connectionString: opts.databaseUrl,
    logger,
    applicationName: service,
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    ...(opts.poolMax !== undefined ? { max: opts.poolMax } : {}),
  });
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: service, logger, security: config });
  return { logger, registry, pool, kafka };
}
