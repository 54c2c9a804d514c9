import { createLogger } from '@shared/logger';
import { createPool, checkDatabaseReady } from '@shared/db';
import { createKafka, checkKafkaReady } from '@shared/kafka';
import { createMetricsRegistry } from '@shared/metrics';
import { createOpsApp, httpComponent } from '@shared/http';
import { runService } from '@shared/lifecycle';
import { loadRelayConfig } from './config';
import { createRelay } from './relay';

async function main(): Promise<void> {
  const config = loadRelayConfig();
  const logger = createLogger({ service: 'relay', level: config.LOG_LEVEL });
  const registry = createMetricsRegistry('relay');
  // Each relay loop holds one client for its transaction; the rest serve the gauges and /readyz.
  const pool = createPool({
    connectionString: config.DATABASE_URL,
    logger,
    applicationName: 'relay',
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    max: config.RELAY_CONCURRENCY + 3,
  });
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: 'relay', logger, security: config });
  const admin = kafka.admin();
  const relay = createRelay({ pool, kafka, logger, registry, config });
  await runService({
    logger,
    components: [
      { name: 'pool', stop: () => pool.end() },
      // Readiness only: a relay started while Kafka is down still starts and waits for it.
      { name: 'kafka-admin', start: () => admin.connect().catch(() => undefined), stop: () => admin.disconnect() },
      { name: 'relay', start: () => relay.start(), stop: () => relay.stop() },
      httpComponent({
        name: 'http',
        port: config.PORT,
        createApp: () => {
          const checks = [
            { name: 'postgres', check: () => checkDatabaseReady(pool) },
            { name: 'kafka', check: () => checkKafkaReady(admin) },
          ];
          return createOpsApp({ logger, registry, checks });
        },
        onListening: (http) => logger.info({ port: http.port }, 'relay listening'),
      }),
    ],
  });
}

void main();
