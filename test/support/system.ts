import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startKafkaBroker, type BrokerHandle } from '../../infra/kafka/broker';
import { spawnService, waitForReady, type ServiceName, type ServiceProcess } from '../../infra/dev/service-process';
import { freePort } from './ports';
import { startSmtpTestServer, type SmtpTestServer } from './smtp-test-server';

/**
 * The whole system as real OS processes — accounts, relays and mailers, a Kafka broker of its own
 * (so it can be stopped and restarted) and the fault-injecting SMTP test server — for the end-to-end
 * suite and the chaos run. Every process can be SIGKILLed and restarted by index.
 */
export type SystemOptions = {
  databaseUrl: string;
  counts?: Partial<Record<ServiceName, number>>;
  /** Extra environment for every service (e.g. short SMTP timeouts). */
  env?: Record<string, string>;
  /** Use these brokers instead of starting an own broker (then stopBroker/startBroker are unavailable). */
  brokers?: string;
  /** Collects every log line of every process (for the secrets-in-logs check). */
  onLine?: (label: string, line: string) => void;
  topicPrefix?: string;
  /** Make the SMTP test server require AUTH with these credentials (the mailer gets them). */
  smtpAuth?: { user: string; pass: string };
  /** Extra node flags for every service process (the bench's `--cpu-prof`). */
  nodeArgs?: (label: string) => string[];
};

/** `url` is the service's PORT; `opsUrl` serves /metrics and /readyz (accounts: OPS_PORT, else the same). */
export type Instance = { name: ServiceName; index: number; port: number; proc: ServiceProcess | undefined; url: string; opsPort: number; opsUrl: string };

export type System = {
  brokers: string;
  smtp: SmtpTestServer;
  instances: Instance[];
  accountsUrls: () => string[];
  kill: (name: ServiceName, index: number) => Promise<void>;
  restart: (name: ServiceName, index: number) => Promise<void>;
  stopBroker: () => Promise<void>;
  startBroker: () => Promise<void>;
  brokerRunning: () => boolean;
  /** pid of the system's own Kafka JVM while it runs (undefined with external brokers). */
  brokerPid: () => number | undefined;
  stop: () => Promise<void>;
  logs: string[];
};

export async function startSystem(opts: SystemOptions): Promise<System> {
  const counts = { accounts: 1, relay: 2, mailer: 2, ...opts.counts };
  const workDir = mkdtempSync(path.join(tmpdir(), 'rp-system-'));
  const logs: string[] = [];
  let broker: BrokerHandle | undefined;
  const brokerPort = await freePort();
  const controllerPort = await freePort();
  const startBroker = async () => {
    broker = await startKafkaBroker({ port: brokerPort, controllerPort, dataDir: path.join(workDir, 'kafka') });
  };
  if (!opts.brokers) await startBroker();
  const brokers = opts.brokers ?? `127.0.0.1:${brokerPort}`;
  const smtp = await startSmtpTestServer(opts.smtpAuth ? { auth: opts.smtpAuth } : {});

  const baseEnv: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    NODE_ENV: 'test',
    LOG_LEVEL: 'info',
    DATABASE_URL: opts.databaseUrl,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: opts.topicPrefix ?? '',
    JWT_SECRET: 'e2e-test-secret-that-is-long-enough-0123456789',
    SMTP_HOST: smtp.host,
    SMTP_PORT: String(smtp.port),
    ...(opts.smtpAuth ? { SMTP_USER: opts.smtpAuth.user, SMTP_PASSWORD: opts.smtpAuth.pass } : {}),
    ...opts.env,
  };

  const instances: Instance[] = [];
  for (const name of ['accounts', 'relay', 'mailer'] as const) {
    for (let index = 0; index < counts[name]; index++) {
      const port = await freePort();
      const opsPort = name === 'accounts' ? await freePort() : port;
      instances.push({ name, index, port, proc: undefined, url: `http://127.0.0.1:${port}`, opsPort, opsUrl: `http://127.0.0.1:${opsPort}` });
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
      env: { ...baseEnv, PORT: String(instance.port), ...(instance.name === 'accounts' ? { OPS_PORT: String(instance.opsPort), OPS_HOST: '127.0.0.1' } : {}) },
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
    if (broker) {
      try {
        process.kill(broker.pid, 'SIGKILL');
      } catch {
        // already stopped
      }
    }
  };
  process.on('exit', killAll);
  await Promise.all(instances.map(launch));
  // Ready means its dependencies answer; with the broker up every instance must get there.
  await Promise.all(instances.map((i) => waitForReady(`${i.opsUrl}/readyz`, 60_000)));

  return {
    brokers,
    smtp,
    instances,
    logs,
    accountsUrls: () => instances.filter((i) => i.name === 'accounts' && i.proc && i.proc.child.exitCode === null && i.proc.child.signalCode === null).map((i) => i.url),
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
      if (!broker) throw new Error('the system does not own its broker');
      await broker.stop();
      broker = undefined;
    },
    startBroker: async () => {
      if (broker) return;
      await startBroker();
    },
    brokerRunning: () => broker !== undefined,
    brokerPid: () => broker?.pid,
    stop: async () => {
      process.off('exit', killAll);
      await Promise.all(instances.map((i) => i.proc?.stop(10_000)));
      await smtp.close();
      if (broker) await broker.stop();
      rmSync(workDir, { recursive: true, force: true });
    },
  };
}
