import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startKafkaBroker, type BrokerHandle } from '../../infra/kafka/broker';
import { startKafkaCluster, waitForClusterSize, type KafkaCluster } from '../../infra/kafka/cluster';
import { spawnService, waitForReady, type ServiceName, type ServiceProcess } from '../../infra/dev/service-process';
import { freePort } from './ports';
import { TEST_MAIL_PAYLOAD_KEY } from './payload-key';
import { startSmtpTestServer, type SmtpTestServer } from './smtp-test-server';

/**
 * The whole system as real OS processes — accounts, relays and mailers, a Kafka broker of its own
 * (so it can be stopped and restarted) and the fault-injecting SMTP test server — for the end-to-end
 * suite and the chaos run. Every process can be SIGKILLed and restarted by index.
 */
export type SystemOptions = {
  /** accounts' database (the relay reads its outbox). */
  databaseUrl: string;
  /** The mailer's own database (migrations/mailer); default `databaseUrl`, as MAILER_DATABASE_URL's. */
  mailerDatabaseUrl?: string;
  counts?: Partial<Record<ServiceName, number>>;
  /** Extra environment for every service (e.g. short SMTP timeouts). */
  env?: Record<string, string>;
  /** Use these brokers instead of starting an own broker (then stopBroker/startBroker are unavailable). */
  brokers?: string;
  /** Own Kafka: 1 broker (default) or a KRaft cluster of this many nodes (replication 3, min ISR 2). */
  kafkaClusterSize?: number;
  /** Collects every log line of every process (for the secrets-in-logs check). */
  onLine?: (label: string, line: string) => void;
  topicPrefix?: string;
  /** Make the SMTP test server require AUTH with these credentials (the mailer gets them). */
  smtpAuth?: { user: string; pass: string };
  /** Extra node flags for every service process (the bench's `--cpu-prof`). */
  nodeArgs?: (label: string) => string[];
};

/** `url` is the service's PORT; `opsUrl` serves /metrics and /readyz (accounts: OPS_PORT, else the same). */
export type Instance = {
  name: ServiceName;
  index: number;
  port: number;
  proc: ServiceProcess | undefined;
  url: string;
  opsPort: number;
  opsUrl: string;
};

export type System = {
  brokers: string;
  smtp: SmtpTestServer;
  instances: Instance[];
  accountsUrls: () => string[];
  kill: (name: ServiceName, index: number) => Promise<void>;
  restart: (name: ServiceName, index: number) => Promise<void>;
  /** SIGTERM every Kafka node (a clean stop of the whole cluster). */
  stopBroker: () => Promise<void>;
  /** Starts every stopped or crashed Kafka node again on its data directory. */
  startBroker: () => Promise<void>;
  brokerRunning: () => boolean;
  /** pid of the system's own (first) Kafka JVM while it runs (undefined with external brokers). */
  brokerPid: () => number | undefined;
  /** The Kafka nodes this system owns (one, or the cluster's). */
  kafkaNodes: () => BrokerHandle[];
  /** SIGKILL one Kafka node (kill -9; default the first). */
  crashBroker: (node?: BrokerHandle) => Promise<void>;
  /** Restarts one node on its data directory and waits until it serves metadata. */
  restartBroker: (node?: BrokerHandle) => Promise<void>;
  /** The node leading `topic`'s `partition` (a cluster only). */
  leaderOf: (topic: string, partition: number) => Promise<BrokerHandle>;
  /** Waits until every running node is back in the ISR of `topics` (a cluster only; a no-op alone). */
  waitKafkaInSync: (topics: string[]) => Promise<void>;
  stop: () => Promise<void>;
  logs: string[];
};

export async function startSystem(opts: SystemOptions): Promise<System> {
  const counts = { accounts: 1, relay: 2, mailer: 2, ...opts.counts };
  const workDir = mkdtempSync(path.join(tmpdir(), 'rp-system-'));
  const logs: string[] = [];
  let nodes: BrokerHandle[] = [];
  let cluster: KafkaCluster | undefined;
  let brokers = opts.brokers ?? '';
  if (!opts.brokers) {
    const size = opts.kafkaClusterSize ?? 1;
    if (size > 1) {
      const ports: number[] = [];
      const controllerPorts: number[] = [];
      for (let i = 0; i < size; i++) {
        ports.push(await freePort());
        controllerPorts.push(await freePort());
      }
      cluster = await startKafkaCluster({ size, ports, controllerPorts, dataDir: path.join(workDir, 'kafka') });
      nodes = cluster.nodes;
      brokers = cluster.brokers;
    } else {
      const broker = await startKafkaBroker({
        port: await freePort(),
        controllerPort: await freePort(),
        dataDir: path.join(workDir, 'kafka'),
      });
      nodes = [broker];
      brokers = broker.brokers;
    }
  }
  const ownKafka = () => {
    if (nodes.length === 0) throw new Error('the system does not own its broker');
    return nodes;
  };
  const smtp = await startSmtpTestServer(opts.smtpAuth ? { auth: opts.smtpAuth } : {});

  const baseEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    DATABASE_URL: opts.databaseUrl,
    MAILER_DATABASE_URL: opts.mailerDatabaseUrl ?? opts.databaseUrl,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: opts.topicPrefix ?? '',
    JWT_SECRET: 'e2e-test-secret-that-is-long-enough-0123456789',
    // One key for accounts and every mailer: the mailer opens the codes accounts sealed.
    MAIL_PAYLOAD_KEY: TEST_MAIL_PAYLOAD_KEY,
    // Load, chaos and e2e runs register from 127.0.0.1 only.
    REGISTER_MAX_PER_IP_PER_HOUR: '1000000',
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    ...(opts.smtpAuth ? { SMTP_USER: opts.smtpAuth.user, SMTP_PASSWORD: opts.smtpAuth.pass } : {}),
    ...(smtp.caPem ? { SMTP_TLS_CA: smtp.caPem } : {}),
    ...opts.env,
  };

  const instances: Instance[] = [];
  for (const name of ['accounts', 'relay', 'mailer'] as const) {
    for (let index = 0; index < counts[name]; index++) {
      const port = await freePort();
      const opsPort = name === 'accounts' ? await freePort() : port;
      instances.push({
        name,
        index,
        port,
        proc: undefined,
        url: `http://127.0.0.1:${port}`,
        opsPort,
        opsUrl: `http://127.0.0.1:${opsPort}`,
      });
    }
  }
  const find = (name: ServiceName, index: number): Instance => {
    const instance = instances.find((i) => i.name === name && i.index === index);
    if (!instance) throw new Error(`no ${name}#${index}`);
    return instance;
  };
  const launch = async (instance: Instance): Promise<void> => {
    const label = `${instance.name}#${instance.index}`;
    const proc = spawnService(instance.name, {
      env: {
        ...baseEnv,
        PORT: String(instance.port),
        ...(instance.name === 'accounts' ? { OPS_PORT: String(instance.opsPort), OPS_HOST: '127.0.0.1' } : {}),
      },
      label,
      ...(opts.nodeArgs ? { nodeArgs: opts.nodeArgs(label) } : {}),
      onLine: (line) => {
        logs.push(`${label} ${line}`);
        opts.onLine?.(label, line);
      },
    });
    instance.proc = proc;
    await waitForReady(`${instance.url}/healthz`, 60_000, () => proc.child.exitCode !== null);
  };
  // If the driving process dies (a crashed chaos run, an aborted test), nothing it started survives it.
  const killAll = () => {
    for (const i of instances) if (i.proc && i.proc.child.exitCode === null) i.proc.child.kill('SIGKILL');
    for (const node of nodes) {
      if (!node.running()) continue;
      try {
        process.kill(node.pid, 'SIGKILL');
      } catch {
        // already stopped
      }
    }
  };
  process.on('exit', killAll);
  try {
    await Promise.all(instances.map(launch));
    // Ready means its dependencies answer; with the broker up every instance must get there.
    await Promise.all(instances.map((i) => waitForReady(`${i.opsUrl}/readyz`, 60_000)));
  } catch (err) {
    // The caller gets no System to stop: nothing it started may outlive the failed start.
    process.off('exit', killAll);
    killAll();
    await smtp.close();
    throw err;
  }

  return {
    brokers,
    smtp,
    instances,
    logs,
    accountsUrls: () =>
      instances
        .filter(
          (i) => i.name === 'accounts' && i.proc && i.proc.child.exitCode === null && i.proc.child.signalCode === null,
        )
        .map((i) => i.url),
    kill: async (name, index) => {
      const instance = find(name, index);
      await instance.proc?.kill();
      instance.proc = undefined;
    },
    restart: async (name, index) => {
      const instance = find(name, index);
      if (instance.proc) await instance.proc.kill();
      await launch(instance);
    },
    stopBroker: async () => {
      await Promise.all(ownKafka().map((n) => n.stop()));
    },
    startBroker: async () => {
      const stopped = ownKafka().filter((n) => !n.running());
      // A cluster's nodes must come back together (a KRaft quorum needs a majority), then serve.
      await Promise.all(stopped.map((n) => n.restart({ noWait: nodes.length > 1 })));
      if (nodes.length > 1) await waitForClusterSize(brokers, nodes.length, 120_000);
    },
    brokerRunning: () => nodes.some((n) => n.running()),
    brokerPid: () => (nodes[0]?.running() ? nodes[0].pid : undefined),
    kafkaNodes: () => nodes,
    crashBroker: async (node) => {
      await (node ?? ownKafka()[0])?.crash();
    },
    restartBroker: async (node) => {
      const target = node ?? ownKafka()[0];
      if (!target || target.running()) return;
      await target.restart();
    },
    leaderOf: async (topic, partition) => {
      if (!cluster) return ownKafka()[0] as BrokerHandle;
      return cluster.leaderOf(topic, partition);
    },
    waitKafkaInSync: async (topics) => {
      if (cluster) await cluster.waitInSync(topics);
    },
    stop: async () => {
      process.off('exit', killAll);
      await Promise.all(instances.map((i) => i.proc?.stop(10_000)));
      await smtp.close();
      await Promise.all(nodes.map((n) => n.stop()));
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}
