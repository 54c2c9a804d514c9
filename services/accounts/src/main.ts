import { createLogger } from '@shared/logger';
import { createPool } from '@shared/db';
import { createKafka } from '@shared/kafka';
import { createMetricsRegistry } from '@shared/metrics';
import { runService } from '@shared/lifecycle';
import { loadAccountsConfig } from './config';
import { createAccounts } from './accounts';

/** The accounts process: config, logger, pool and Kafka client; accounts.ts wires the rest. */
async function main(): Promise<void> {
  const config = loadAccountsConfig();
  const logger = createLogger({ service: 'accounts', level: config.LOG_LEVEL });
  const registry = createMetricsRegistry('accounts');
  const pool = createPool({
    connectionString: config.DATABASE_URL,
    logger,
    applicationName: 'accounts',
    connectTimeoutMs: config.DB_CONNECT_TIMEOUT_MS,
    statementTimeoutMs: config.DB_STATEMENT_TIMEOUT_MS,
    max: config.DB_POOL_MAX,
  });
  const kafka = createKafka({ brokers: config.KAFKA_BROKERS, clientId: 'accounts', logger, security: config });
  const accounts = createAccounts({ config, logger, registry, pool, kafka });
  await runService({ logger, components: accounts.components });
}

void main();
