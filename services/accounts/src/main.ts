import { createServiceBase } from '@shared/service-base';
import { runService } from '@shared/lifecycle';
import { loadAccountsConfig } from './config';
import { createAccounts } from './accounts';

/** The accounts process: config, logger, pool and Kafka client; accounts.ts wires the rest. */
async function main(): Promise<void> {
  const config = loadAccountsConfig();
  const { logger, registry, pool, kafka } = createServiceBase({
    service: 'accounts',
    config,
    databaseUrl: config.DATABASE_URL,
    poolMax: config.DB_POOL_MAX,
  });
  const accounts = createAccounts({ config, logger, registry, pool, kafka });
  await runService({ logger, components: accounts.components });
}

void main();
