import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { startKafkaBroker } from '../../infra/kafka/broker';
import { startKafkaCluster } from '../../infra/kafka/cluster';
import { migrateService } from '../../scripts/migrate';
import { freePort } from './ports';
import { withDatabase } from './database-url';
import { INFRA_ENV, type InfraState } from './infra-state';

/**
 * Provides PostgreSQL and Kafka for the whole run, in this order of preference:
 *  1. TEST_DATABASE_URL / TEST_KAFKA_BROKERS when set;
 *  2. testcontainers when a Docker engine answers;
 *  3. the machine's PostgreSQL (127.0.0.1:5432) and a Kafka broker launched from infra/kafka
 *     (TEST_KAFKA_CLUSTER_SIZE=3: a 3-node KRaft cluster instead, replication 3, min.insync.replicas 2).
 * A template database per service is migrated once; each test file clones the one it needs
 * (CREATE DATABASE … TEMPLATE), so files run in parallel on their own schema. Everything created here
 * is removed in teardown.
 */
export default async function globalSetup(): Promise<void> {
  const runId = `${Date.now().toString(36)}${process.pid.toString(36)}`;
  const stateDir = mkdtempSync(path.join(tmpdir(), 'rp-test-'));
  const cleanup: CleanupState = { stateDir, containers: [] };
  const docker = dockerEngineAnswers();

  let adminDatabaseUrl = process.env.TEST_DATABASE_URL;
  let pgSource: InfraState['source']['postgres'] = 'env';
  if (!adminDatabaseUrl) {
    if (docker) {
      const { PostgreSqlContainer } = await loadPostgresContainer();
      const container = await new PostgreSqlContainer('postgres:16-alpine').start();
      cleanup.containers.push(container);
      adminDatabaseUrl = container.getConnectionUri();
      pgSource = 'testcontainers';
    } else {
      adminDatabaseUrl = 'postgres://postgres@127.0.0.1:5432/postgres';
      pgSource = 'local';
    }
  }

  let kafkaBrokers = process.env.TEST_KAFKA_BROKERS;
  let kafkaSource: InfraState['source']['kafka'] = 'env';
  if (!kafkaBrokers) {
    if (docker) {
      const { GenericContainer, Wait } = await import('testcontainers');
      const port = await freePort();
      const container = await new GenericContainer('apache/kafka:4.1.1')
        .withExposedPorts({ container: 9092, host: port })
        .withEnvironment({
          KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${port},CONTROLLER://localhost:9093`,
          KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS: '0',
        })
        .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
        .start();
      cleanup.containers.push(container);
      kafkaBrokers = `127.0.0.1:${port}`;
      kafkaSource = 'testcontainers';
    } else if (Number(process.env.TEST_KAFKA_CLUSTER_SIZE ?? 1) > 1) {
      const size = Number(process.env.TEST_KAFKA_CLUSTER_SIZE);
      const ports: number[] = [];
      const controllerPorts: number[] = [];
      for (let i = 0; i < size; i++) {
        ports.push(await freePort());
        controllerPorts.push(await freePort());
      }
      const cluster = await startKafkaCluster({ size, ports, controllerPorts, dataDir: path.join(stateDir, 'kafka') });
      cleanup.brokerPids = cluster.nodes.map((n) => n.pid);
      kafkaBrokers = cluster.brokers;
      kafkaSource = 'local';
    } else {
      const port = await freePort();
      const broker = await startKafkaBroker({
        port,
        controllerPort: await freePort(),
        dataDir: path.join(stateDir, 'kafka'),
        heapMb: 512,
      });
      cleanup.brokerPids = [broker.pid];
      kafkaBrokers = broker.brokers;
      kafkaSource = 'local';
    }
  }

  const databasePrefix = `rp_test_${runId}`;
  // One template per service, each migrated with only that service's migrations: a test that puts the
  // mailer on the accounts database (or the reverse) fails, as it would in production.
  const templateDatabase = `${databasePrefix}_template`;
  const mailerTemplateDatabase = `${databasePrefix}_mailer_template`;
  const admin = new pg.Client({ connectionString: adminDatabaseUrl });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${templateDatabase}`);
    await admin.query(`CREATE DATABASE ${mailerTemplateDatabase}`);
  } finally {
    await admin.end();
  }
  await migrateService({ service: 'accounts', databaseUrl: withDatabase(adminDatabaseUrl, templateDatabase) });
  await migrateService({ service: 'mailer', databaseUrl: withDatabase(adminDatabaseUrl, mailerTemplateDatabase) });

  const state: InfraState = {
    adminDatabaseUrl,
    templateDatabase,
    mailerTemplateDatabase,
    databasePrefix,
    kafkaBrokers,
    source: { postgres: pgSource, kafka: kafkaSource },
  };
  process.env[INFRA_ENV] = JSON.stringify(state);
  writeFileSync(path.join(stateDir, 'state.json'), JSON.stringify(state));
  (globalThis as { __RP_CLEANUP__?: CleanupState }).__RP_CLEANUP__ = cleanup;
  process.stderr.write(
    `\n[test-infra] postgres: ${pgSource}, kafka: ${kafkaSource} (${kafkaBrokers}), template db: ${templateDatabase}\n`,
  );
}

export type CleanupState = { stateDir: string; brokerPids?: number[]; containers: { stop: () => Promise<unknown> }[] };

function dockerEngineAnswers(): boolean {
  if (process.env.TEST_NO_DOCKER === '1') return false;
  const result = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 5_000 });
  return result.status === 0 && result.stdout.trim().length > 0;
}

type PgContainerModule = {
  PostgreSqlContainer: new (image: string) => {
    start: () => Promise<{ getConnectionUri: () => string; stop: () => Promise<unknown> }>;
  };
};

async function loadPostgresContainer(): Promise<PgContainerModule> {
  // @testcontainers/postgresql is optional: only machines with Docker need it.
  const name = '@testcontainers/postgresql';
  try {
    return (await import(name)) as PgContainerModule;
  } catch {
    throw new Error(
      'a Docker engine answers but @testcontainers/postgresql is not installed; ' +
        'set TEST_NO_DOCKER=1 to use the local PostgreSQL',
    );
  }
}
