import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { startKafkaBroker, runningBrokerPid, waitForBroker, type BrokerHandle } from '../infra/kafka/broker';
import { startKafkaCluster } from '../infra/kafka/cluster';
import { startMailCatcher, type MailCatcher } from '../infra/dev/mail-catcher';
import {
  REPO_ROOT,
  spawnService,
  waitForReady,
  type ServiceName,
  type ServiceProcess,
} from '../infra/dev/service-process';
import { migrate } from './migrate';
import { generatePayloadKey } from '../shared/src/payload-crypto';

/**
 * `npm start`: the whole stack on one machine — migrations, a local Kafka broker unless KAFKA_BROKERS
 * is set, a dev mail catcher unless SMTP_HOST is set, then accounts, relay and mailer, each its own
 * process with prefixed log lines. Ctrl-C / SIGTERM stops everything it started, Kafka included.
 * KAFKA_CLUSTER_SIZE=3: three combined KRaft nodes on KAFKA_PORT, +1, +2 (9092-9094; controllers on
 * 9095-9097), replication 3 and min.insync.replicas 2.
 */
const ACCOUNTS_PORT = Number(process.env.ACCOUNTS_PORT ?? 3000);
/** accounts serves /metrics and /readyz only on its ops port (OPS_PORT), never on the API port. */
const ACCOUNTS_OPS_PORT = Number(process.env.ACCOUNTS_OPS_PORT ?? 3010);
const SERVICES: { name: ServiceName; port: number; opsPort: number }[] = [
  { name: 'accounts', port: ACCOUNTS_PORT, opsPort: ACCOUNTS_OPS_PORT },
  { name: 'relay', port: Number(process.env.RELAY_PORT ?? 3001), opsPort: Number(process.env.RELAY_PORT ?? 3001) },
  { name: 'mailer', port: Number(process.env.MAILER_PORT ?? 3002), opsPort: Number(process.env.MAILER_PORT ?? 3002) },
];

const COLORS: Record<string, string> = {
  accounts: '\x1b[36m',
  relay: '\x1b[35m',
  mailer: '\x1b[33m',
  kafka: '\x1b[32m',
  stack: '\x1b[1m',
  mail: '\x1b[34m',
};
const useColor = process.stdout.isTTY === true;

function say(label: string, line: string): void {
  const tag = `[${label}]`.padEnd(11);
  process.stdout.write(useColor ? `${COLORS[label] ?? ''}${tag}\x1b[0m ${line}\n` : `${tag} ${line}\n`);
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

/** Starts a KRaft cluster of `size` nodes on port, port+1, ... (controllers on port+size, ...). */
async function startCluster(size: number, port: number, keep: (nodes: BrokerHandle[]) => void): Promise<string> {
  const ports = Array.from({ length: size }, (_, i) => port + i);
  const controllerPorts = Array.from({ length: size }, (_, i) => port + size + i);
  for (const p of [...ports, ...controllerPorts])
    if (await portOpen(p)) throw new Error(`port ${p} is in use: stop what listens there or set KAFKA_PORT`);
  const dataDir = path.resolve(process.env.KAFKA_DATA_DIR ?? path.join(REPO_ROOT, '.run', `kafka-cluster-${size}`));
  say(
    'kafka',
    `starting a ${size}-node KRaft cluster on ${ports.map((p) => `127.0.0.1:${p}`).join(', ')} (controllers ${controllerPorts.join(', ')}; data in ${path.relative(REPO_ROOT, dataDir)})...`,
  );
  const cluster = await startKafkaCluster({ size, ports, controllerPorts, dataDir, detached: true });
  keep(cluster.nodes);
  say(
    'kafka',
    `ready (pids ${cluster.nodes.map((n) => n.pid).join(', ')}; replication ${cluster.replicationFactor}, min.insync.replicas ${cluster.replicationFactor >= 3 ? 2 : 1})`,
  );
  return cluster.brokers;
}

/** The same server with another database: `<name>_<suffix>`. */
function siblingDatabaseUrl(url: string, suffix: string): string {
  const u = new URL(url);
  u.pathname = `/${databaseName(url)}_${suffix}`;
  return u.toString();
}

function databaseName(url: string): string {
  return decodeURIComponent(new URL(url).pathname.replace(/^\//, '')) || 'postgres';
}

/** PostgreSQL answers at DATABASE_URL; the mailer's database is created there when it is missing. */
async function ensureDatabase(databaseUrl: string, mailerDatabaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    throw new Error(`PostgreSQL is not reachable at DATABASE_URL (${message}); start it or set DATABASE_URL`);
  }
  try {
    const name = databaseName(mailerDatabaseUrl);
    const sameServer = new URL(mailerDatabaseUrl).host === new URL(databaseUrl).host;
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (sameServer && !rowCount) {
      await client.query(`CREATE DATABASE ${pgIdentifier(name)}`);
      say('stack', `created the mailer's database ${name}`);
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

const pgIdentifier = (name: string) => `"${name.replace(/"/g, '""')}"`;

async function main(): Promise<void> {
  const env = { ...process.env };
  const databaseUrl = env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  env.DATABASE_URL = databaseUrl;
  // The mailer owns its data: on one box it gets a database of its own beside accounts' (created below).
  const mailerDatabaseUrl = env.MAILER_DATABASE_URL || siblingDatabaseUrl(databaseUrl, 'mailer');
  env.MAILER_DATABASE_URL = mailerDatabaseUrl;
  let kafkaNodes: BrokerHandle[] = [];
  let catcher: MailCatcher | undefined;
  const children: ServiceProcess[] = [];
  let stopping = false;

  // One stop, however many signals: a terminal's Ctrl-C, a SIGTERM, a closed terminal. The services
  // and Kafka run in process groups of their own (a terminal's SIGINT reaches only this process), so
  // each service gets exactly one SIGTERM from here and drains; Kafka stops only after all of them.
  let stopped: Promise<never> | undefined;
  const stopAll = (code: number): Promise<never> => {
    if (stopped) {
      say('stack', 'already stopping: waiting for the services to drain');
      return stopped;
    }
    stopping = true;
    stopped = (async () => {
      say('stack', 'stopping: the services drain first, then Kafka stops...');
      const codes = await Promise.all([...children].reverse().map((c) => c.stop()));
      say(
        'stack',
        `services stopped (exit codes ${children.map((c, i) => `${c.name} ${codes[children.length - 1 - i]}`).join(', ')})`,
      );
      if (catcher) await catcher.close();
      if (kafkaNodes.length) {
        say('kafka', `stopping ${kafkaNodes.length === 1 ? 'the broker' : `${kafkaNodes.length} brokers`}...`);
        await Promise.all(kafkaNodes.map((n) => n.stop()));
      }
      say('stack', 'stopped');
      process.exit(code);
    })();
    return stopped;
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stopAll(0));

  try {
    // 1. PostgreSQL must be there; each service's migrations bring its own database up to date.
    await ensureDatabase(databaseUrl, mailerDatabaseUrl);
    const ran = await migrate({ databaseUrl, mailerDatabaseUrl });
    say('stack', ran.length ? `migrations applied: ${ran.join(', ')}` : 'schemas up to date');
    say('stack', `databases: accounts ${databaseName(databaseUrl)}, mailer ${databaseName(mailerDatabaseUrl)}`);

    // 2. Kafka: the one in KAFKA_BROKERS, else a local KRaft broker (reused if kafka:start runs one).
    if (!env.KAFKA_BROKERS) {
      const clusterSize = Number(env.KAFKA_CLUSTER_SIZE ?? 1);
      if (!Number.isInteger(clusterSize) || clusterSize < 1 || clusterSize > 5)
        throw new Error('KAFKA_CLUSTER_SIZE must be 1..5');
      const port = Number(env.KAFKA_PORT ?? 9092);
      if (clusterSize > 1) env.KAFKA_BROKERS = await startCluster(clusterSize, port, (nodes) => (kafkaNodes = nodes));
      else {
        const dataDir = path.resolve(env.KAFKA_DATA_DIR ?? path.join(REPO_ROOT, '.run', 'kafka'));
        if (runningBrokerPid(dataDir)) {
          // `npm run kafka:start`'s broker: it may still be starting (up to 180 s, as a start waits).
          await waitForBroker(`127.0.0.1:${port}`, 180_000, () => runningBrokerPid(dataDir) === undefined);
          say('kafka', `using the broker of ${path.relative(REPO_ROOT, dataDir)} on 127.0.0.1:${port}`);
        } else if (await portOpen(port)) {
          // Whatever else holds the port must answer as Kafka: the services would otherwise retry it for ever.
          await waitForBroker(`127.0.0.1:${port}`, 15_000).catch(() => {
            throw new Error(
              `127.0.0.1:${port} does not answer as a Kafka broker: stop what listens there or set KAFKA_PORT`,
            );
          });
          say('kafka', `using the broker already listening on 127.0.0.1:${port}`);
        } else {
          say(
            'kafka',
            `starting a KRaft broker on 127.0.0.1:${port} (data in ${path.relative(REPO_ROOT, dataDir)})...`,
          );
          // Its own process group: Ctrl-C must not stop Kafka before the services drained.
          const broker = await startKafkaBroker({ port, dataDir, detached: true });
          kafkaNodes = [broker];
          say('kafka', `ready (pid ${broker.pid})`);
        }
        env.KAFKA_BROKERS = `127.0.0.1:${port}`;
      }
    }
    say('stack', `Kafka bootstrap brokers: ${env.KAFKA_BROKERS}`);

    // 3. Mail: the SMTP server in SMTP_HOST, else the dev catcher.
    if (!env.SMTP_HOST) {
      catcher = await startMailCatcher({
        smtpPort: Number(env.MAIL_CATCHER_SMTP_PORT ?? 1025),
        webPort: Number(env.MAIL_CATCHER_WEB_PORT ?? 1080),
        print: (l) => say('mail', l),
      });
      env.SMTP_HOST = '127.0.0.1';
      env.SMTP_PORT = String(catcher.smtpPort);
    }

    // 4. The services, each its own process. accounts seals the code the mailer opens: both get ONE key
    // (a fresh one per run unless MAIL_PAYLOAD_KEY is set; each service alone would pick its own).
    if (!env.MAIL_PAYLOAD_KEY) env.MAIL_PAYLOAD_KEY = generatePayloadKey();
    for (const { name, port, opsPort } of SERVICES) {
      const serviceEnv = { ...env, PORT: String(port), ...(opsPort !== port ? { OPS_PORT: String(opsPort) } : {}) };
      const child = spawnService(name, { env: serviceEnv, onLine: (l) => say(name, l), ownProcessGroup: true });
      children.push(child);
      void child.exited.then((code) => {
        if (!stopping) {
          say('stack', `${name} exited unexpectedly (code ${code}): stopping the stack`);
          void stopAll(1);
        }
      });
    }
    await Promise.all(
      SERVICES.map(({ name, opsPort }, i) =>
        waitForReady(`http://127.0.0.1:${opsPort}/readyz`, 90_000, () => children[i]?.child.exitCode !== null).then(
          () => say(name, 'ready'),
        ),
      ),
    );

    say('stack', 'the stack is up:');
    const [a, r, m] = SERVICES.map((s) => s.port);
    const ao = ACCOUNTS_OPS_PORT;
    say(
      'stack',
      `  accounts API   http://127.0.0.1:${a}/api/v1/usr/register  (OpenAPI: http://127.0.0.1:${a}/api/v1/openapi.json)`,
    );
    say(
      'stack',
      `  metrics        http://127.0.0.1:${ao}/metrics (accounts ops)  http://127.0.0.1:${r}/metrics  http://127.0.0.1:${m}/metrics`,
    );
    say(
      'stack',
      `  health         /healthz and /readyz on ports ${ao} (accounts ops), ${r}, ${m}; /healthz also on ${a}`,
    );
    say('stack', `  kafka          ${env.KAFKA_BROKERS}`);
    if (catcher)
      say('stack', `  dev inbox      http://127.0.0.1:${catcher.webPort}/  (SMTP 127.0.0.1:${catcher.smtpPort})`);
    say('stack', 'Ctrl-C stops everything.');
  } catch (err) {
    say('stack', `failed: ${err instanceof Error ? err.message : String(err)}`);
    await stopAll(1);
  }
}

void main();
