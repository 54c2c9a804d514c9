import { createLogger } from '@shared/logger';
import { createPool, checkDatabaseReady } from '@shared/db';
import { createKafka, checkKafkaReady } from '@shared/kafka';
import { createMetricsRegistry } from '@shared/metrics';
import { listen, type HttpServer } from '@shared/http';
import { runService } from '@shared/lifecycle';
import { loadAccountsConfig } from './config';
import { createAccountsApp } from './entry-points/http/app';

async function main(): Promise<void> {
  const config = loadAccountsConfig();
  const logger = createLogger({ service: 'accounts', level: config.LOG_LEVEL });
  const registry = createMetricsRegistry('accounts');
  const pool = createPool({ connectionString: config.DATABASE_URL, logger, applicationName: 'accounts', max: config.DB_POOL_MAX });
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: 'accounts', logger });
  const admin = kafka.admin();
  let http: HttpServer | undefined;

  await runService({
    logger,
    components: [
      { name: 'pool', stop: () => pool.end() },
      { name: 'kafka-admin', start: () => admin.connect(), stop: () => admin.disconnect() },
      {
        name: 'http',
        start: async () => {
          const app = createAccountsApp({
            logger,
            registry,
            checks: [
              { name: 'postgres', check: () => checkDatabaseReady(pool) },
              { name: 'kafka', check: () => checkKafkaReady(admin) },
            ],
          });
          http = await listen(app, config.PORT);
          logger.info({ port: http.port }, 'accounts listening');
        },
        stop: async () => http?.close(),
      },
    ],
  });
}

void main();
