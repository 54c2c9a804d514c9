import { createServiceBase } from '@shared/service-base';
import { checkDatabaseReady } from '@shared/db';
import { checkKafkaReady } from '@shared/kafka';
import { createOpsApp, httpComponent } from '@shared/http';
import { runService } from '@shared/lifecycle';
import { tableUpkeep } from '@shared/table-upkeep';
import { loadRelayConfig } from './config';
import { createRelay } from './relay';

async function main(): Promise<void> {
  const config = loadRelayConfig();
  const { logger, registry, pool, kafka } = createServiceBase({
    service: 'relay',
    config,
    databaseUrl: config.DATABASE_URL,
    // Each relay loop holds one client for its transaction; the rest serve the gauges and /readyz.
    poolMax: config.RELAY_CONCURRENCY + 3,
  });
  const admin = kafka.admin();
  const relay = createRelay({ pool, kafka, logger, registry, config });
  await runService({
    logger,
    components: [
      { name: 'pool', stop: () => pool.end() },
      // Readiness only: a relay started while Kafka is down still starts and waits for it.
      { name: 'kafka-admin', start: () => admin.connect().catch(() => undefined), stop: () => admin.disconnect() },
      // The outbox holds pending rows only because published ones are deleted: autovacuum must reclaim them.
      tableUpkeep({ pool, logger, tables: ['outbox'] }),
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
