import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';

/**
 * Runs a real Apache Kafka broker (KRaft: one combined broker+controller) from the jars that
 * infra/kafka/pom.xml fetches from Maven Central. Used by `npm run kafka:start`, `npm start` and the
 * test harness; no Docker needed, only Java 17+ and Maven.
 */

export const KAFKA_VERSION = readKafkaVersion();

function readKafkaVersion(): string {
  const pom = readFileSync(path.join(__dirname, 'pom.xml'), 'utf8');
  const match = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom);
  if (!match?.[1]) throw new Error('infra/kafka/pom.xml has no <kafka.version>');
  return match[1];
}

/** Where the broker's jars live (outside git): KAFKA_JARS_DIR or ~/.cache/registration-platform/kafka-<version>. */
export function kafkaJarsDir(): string {
  return (
    process.env.KAFKA_JARS_DIR ?? path.join(homedir(), '.cache', 'registration-platform', `kafka-${KAFKA_VERSION}`)
  );
}

function jarsPresent(dir: string): boolean {
  return existsSync(dir) && readdirSync(dir).some((f) => f.startsWith('kafka_2.13-') && f.endsWith('.jar'));
}

/** Fetches the broker jars with Maven unless they are cached already. Prints progress to stderr. */
export function ensureKafkaJars(log: (line: string) => void = (l) => process.stderr.write(`${l}\n`)): string {
  const dir = kafkaJarsDir();
  if (jarsPresent(dir)) return dir;
  log(`[kafka] fetching Apache Kafka ${KAFKA_VERSION} jars from Maven Central into ${dir} (one time)...`);
  const result = spawnSync(
    'mvn',
    [
      '-B',
      '-q',
      '-f',
      path.join(__dirname, 'pom.xml'),
      'dependency:copy-dependencies',
      '-DincludeScope=runtime',
      `-DoutputDirectory=${dir}`,
    ],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
  if (result.error) throw new Error(`could not run mvn (is Maven installed?): ${result.error.message}`);
  if (result.status !== 0 || !jarsPresent(dir))
    throw new Error(`mvn dependency:copy-dependencies failed with exit code ${result.status}`);
  log(`[kafka] jars ready (${readdirSync(dir).length} files)`);
  return dir;
}

export type BrokerOptions = {
  /** PLAINTEXT listener port clients use. */
  port: number;
  /** KRaft controller port (default port + 1). */
  controllerPort?: number;
  /** Data + config + log directory; reused across restarts (formatted only once). */
  dataDir: string;
  /** JVM heap ceiling; the issue bounds it at 512 MiB. */
  heapMb?: number;
  /** Keep running after this Node process exits (kafka:start). */
  detached?: boolean;
  /** Default partitions for auto-created topics. */
  partitions?: number;
  /** KRaft node id (1 for a single broker; 1..N in a cluster). */
  nodeId?: number;
  /** `controller.quorum.voters` of a cluster (default: this node alone). */
  quorumVoters?: string;
  /** KRaft cluster id shared by every node of a cluster (default: a random one for a lone broker). */
  clusterId?: string;
  /** Replication of internal topics and default topic settings (1 alone; 3 in a 3-node cluster). */
  replicationFactor?: number;
  /** Skip waiting until this node serves metadata (a cluster waits for all nodes together). */
  noWait?: boolean;
  /**
   * More PLAINTEXT listeners, each advertised at another address (tests put a TCP proxy there: Kafka answers
   * metadata with the advertised address of the listener the client connected to, so a client bootstrapped
   * through `advertisedPort` sends everything through the proxy). Names: upper-case letters, e.g. `PROXIED`.
   */
  extraListeners?: ExtraListener[];
  /** A SASL_PLAINTEXT listener (SCRAM-SHA-256/512) on another port; its users are created at format time. */
  saslListener?: SaslListener;
};

export type ExtraListener = { name: string; port: number; advertisedPort: number };
export type SaslListener = { port: number; users: { username: string; password: string }[] };

/** server.properties lines of the SASL listener (named SASL; PLAINTEXT stays for brokers and probes). */
function saslLines(sasl: SaslListener | undefined): string[] {
  if (!sasl) return [];
  const module = 'org.apache.kafka.common.security.scram.ScramLoginModule required;';
  return [
    'sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512',
    `listener.name.sasl.scram-sha-256.sasl.jaas.config=${module}`,
    `listener.name.sasl.scram-sha-512.sasl.jaas.config=${module}`,
  ];
}

/** `kafka-storage format --add-scram` arguments: each user under both SCRAM mechanisms. */
function scramFormatArgs(sasl: SaslListener | undefined): string[] {
  return (sasl?.users ?? []).flatMap(({ username, password }) =>
    ['SCRAM-SHA-256', 'SCRAM-SHA-512'].flatMap((m) => ['--add-scram', `${m}=[name=${username},password=${password}]`]),
  );
}

export type BrokerHandle = {
  brokers: string;
  port: number;
  /** The current JVM's pid (it changes on restart). */
  pid: number;
  nodeId: number;
  dataDir: string;
  logFile: string;
  /** SIGTERM: Kafka shuts down cleanly. */
  stop: () => Promise<void>;
  /** SIGKILL (kill -9): no shutdown code runs, the data directory is left as a crash leaves it. */
  crash: () => Promise<void>;
  /** Starts the JVM again on the same data directory (after stop or crash); resolves once it serves metadata. */
  restart: (opts?: { noWait?: boolean }) => Promise<void>;
  running: () => boolean;
};

function listenerLines(port: number, controllerPort: number, extra: ExtraListener[], sasl?: SaslListener): string[] {
  for (const l of extra) {
    if (!/^[A-Z][A-Z0-9_]*$/.test(l.name) || ['PLAINTEXT', 'CONTROLLER'].includes(l.name)) {
      throw new Error(`extra listener name ${l.name} must be upper-case and not PLAINTEXT/CONTROLLER`);
    }
  }
  const listeners = [`PLAINTEXT://127.0.0.1:${port}`, `CONTROLLER://127.0.0.1:${controllerPort}`];
  const advertised = [`PLAINTEXT://127.0.0.1:${port}`];
  const protocols = ['PLAINTEXT:PLAINTEXT', 'CONTROLLER:PLAINTEXT'];
  for (const l of extra) {
    listeners.push(`${l.name}://127.0.0.1:${l.port}`);
    advertised.push(`${l.name}://127.0.0.1:${l.advertisedPort}`);
    protocols.push(`${l.name}:PLAINTEXT`);
  }
  if (sasl) {
    listeners.push(`SASL://127.0.0.1:${sasl.port}`);
    advertised.push(`SASL://127.0.0.1:${sasl.port}`);
    protocols.push('SASL:SASL_PLAINTEXT');
  }
  return [
    `listeners=${listeners.join(',')}`,
    `advertised.listeners=${advertised.join(',')}`,
    `listener.security.protocol.map=${protocols.join(',')}`,
  ];
}

type ResolvedOptions = Required<Omit<BrokerOptions, 'detached' | 'clusterId' | 'noWait' | 'saslListener'>> &
  Pick<BrokerOptions, 'saslListener'>;

function writeConfig(opts: ResolvedOptions): { propsFile: string; log4jFile: string; logFile: string } {
  const logDir = path.join(opts.dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const logFile = path.join(opts.dataDir, 'broker.log');
  const propsFile = path.join(opts.dataDir, 'server.properties');
  const rf = opts.replicationFactor;
  // With replication 3, a write needs 2 replicas in sync (acks=all), so one broker may die at any time.
  const minIsr = rf >= 3 ? 2 : 1;
  writeFileSync(
    propsFile,
    [
      'process.roles=broker,controller',
      `node.id=${opts.nodeId}`,
      `controller.quorum.voters=${opts.quorumVoters}`,
      ...listenerLines(opts.port, opts.controllerPort, opts.extraListeners, opts.saslListener),
      ...saslLines(opts.saslListener),
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      `log.dirs=${path.join(opts.dataDir, 'kraft')}`,
      `num.partitions=${opts.partitions}`,
      `default.replication.factor=${rf}`,
      `min.insync.replicas=${minIsr}`,
      // Never elect an out-of-sync replica: that would silently drop acknowledged records.
      'unclean.leader.election.enable=false',
      `offsets.topic.replication.factor=${rf}`,
      'offsets.topic.num.partitions=10',
      `transaction.state.log.replication.factor=${rf}`,
      `transaction.state.log.min.isr=${minIsr}`,
      `share.coordinator.state.topic.replication.factor=${rf}`,
      `share.coordinator.state.topic.min.isr=${minIsr}`,
      // A test or a freshly started consumer should not wait 3 s for the first rebalance.
      'group.initial.rebalance.delay.ms=0',
      'auto.create.topics.enable=true',
      'log.retention.hours=24',
      // Thread pools sized for the 2-core machines this broker runs on (defaults: 3 network, 8 I/O, 10
      // background threads): fewer threads handing each request over, same work.
      'num.network.threads=2',
      'num.io.threads=2',
      'background.threads=2',
      'log.segment.bytes=67108864',
      // A killed peer is noticed in seconds, not the 18 s / 30 s defaults (crash tests and chaos).
      'replica.lag.time.max.ms=10000',
      'broker.session.timeout.ms=6000',
      'broker.heartbeat.interval.ms=1000',
      // The active controller appends a no-op record to the metadata log every 500 ms by default, so that
      // brokers see the log advance: a write (and an fsync) twice a second on an idle broker. Every 5 s:
      // the idle broker's CPU fell from ~30 to ~23 ms/s; fencing rests on heartbeats, not on these.
      'metadata.max.idle.interval.ms=5000',
      '',
    ].join('\n'),
  );
  const log4jFile = path.join(opts.dataDir, 'log4j2.properties');
  writeFileSync(
    log4jFile,
    [
      'status = warn',
      'appender.file.type = File',
      'appender.file.name = FILE',
      `appender.file.fileName = ${logFile}`,
      'appender.file.layout.type = PatternLayout',
      'appender.file.layout.pattern = [%d] %p %m (%c)%n',
      'rootLogger.level = WARN',
      'rootLogger.appenderRef.file.ref = FILE',
      'logger.kafka.name = kafka.server.KafkaRaftServer',
      'logger.kafka.level = INFO',
      '',
    ].join('\n'),
  );
  return { propsFile, log4jFile, logFile };
}

function javaArgs(jars: string, heapMb: number, log4jFile: string): string[] {
  return [
    `-Xmx${heapMb}m`,
    `-Xms${Math.min(128, heapMb)}m`,
    // A small heap on a small machine: the serial collector has no concurrent GC threads competing with
    // the services for the cores (measured: the idle broker's CPU fell from ~48 to ~41 ms/s).
    '-XX:+UseSerialGC',
    // C1 only, no C2: on 2 cores at tens of requests per second a fresh broker's C2 compiler thread was
    // busy for minutes — a third of the broker's CPU during the cpu bench's window, still after 30 s of
    // produce/fetch warm-up (/proc per thread), and most of its idle CPU. With C1 alone: Kafka 2.0 instead
    // of 2.3–4.1 CPU ms per registration, idle 16 instead of 20–47 ms/s, and the raw producer in the relay
    // drain bench no slower (58k events/s). The broker's work here is syscalls and hand-offs, not hot loops.
    '-XX:TieredStopAtLevel=1',
    '-Djava.awt.headless=true',
    `-Dlog4j2.configurationFile=${log4jFile}`,
    '-cp',
    `${jars}/*`,
  ];
}

/** Formats KRaft storage once per data dir (a restart keeps the topics and offsets). */
function formatStorage(
  jars: string,
  heapMb: number,
  propsFile: string,
  log4jFile: string,
  dataDir: string,
  clusterId: string,
  extraArgs: string[] = [],
): void {
  if (existsSync(path.join(dataDir, 'kraft', 'meta.properties'))) return;
  const args = [
    ...javaArgs(jars, Math.min(heapMb, 256), log4jFile),
    'kafka.tools.StorageTool',
    'format',
    `--cluster-id=${clusterId}`,
    '-c',
    propsFile,
    ...extraArgs,
  ];
  const result = spawnSync('java', args, {
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`kafka storage format failed: ${result.stderr || result.stdout}`);
}

/**
 * A KRaft cluster id is 16 random bytes in URL-safe base64 without padding. It may start with '-',
 * which argparse would read as an option after `-t`: formatStorage passes it as `--cluster-id=<id>`.
 */
export function newClusterId(): string {
  return randomBytes(16).toString('base64url');
}

/** Starts the broker and resolves once it serves metadata (a kafkajs admin describes the cluster). */
export async function startKafkaBroker(options: BrokerOptions): Promise<BrokerHandle> {
  const nodeId = options.nodeId ?? 1;
  const controllerPort = options.controllerPort ?? options.port + 1;
  const opts: ResolvedOptions = {
    heapMb: 512,
    partitions: 3,
    replicationFactor: 1,
    extraListeners: [],
    quorumVoters: `${nodeId}@127.0.0.1:${controllerPort}`,
    ...options,
    nodeId,
    controllerPort,
  };
  const jars = ensureKafkaJars();
  mkdirSync(opts.dataDir, { recursive: true });
  const { propsFile, log4jFile, logFile } = writeConfig(opts);
  formatStorage(
    jars,
    opts.heapMb,
    propsFile,
    log4jFile,
    opts.dataDir,
    options.clusterId ?? newClusterId(),
    scramFormatArgs(opts.saslListener),
  );
  const brokers = `127.0.0.1:${opts.port}`;

  let child: ChildProcess | undefined;
  let exited = true;
  const launch = async (noWait: boolean): Promise<void> => {
    const out = openSync(path.join(opts.dataDir, 'broker.stdout'), 'a');
    const proc = spawn('java', [...javaArgs(jars, opts.heapMb, log4jFile), 'kafka.Kafka', propsFile], {
      detached: options.detached ?? false,
      stdio: ['ignore', out, out],
    });
    if (options.detached) proc.unref();
    if (proc.pid === undefined) throw new Error('could not spawn java (is Java 17+ installed?)');
    child = proc;
    exited = false;
    proc.once('exit', () => {
      if (child === proc) exited = true;
    });
    handle.pid = proc.pid;
    writeFileSync(path.join(opts.dataDir, 'broker.pid'), String(proc.pid));
    if (noWait) return;
    try {
      await waitForBroker(brokers, 180_000, () => exited);
    } catch (err) {
      if (!exited) killAndWait(proc.pid, 5_000);
      throw new Error(`${(err as Error).message}; see ${logFile} and ${path.join(opts.dataDir, 'broker.stdout')}`);
    }
  };
  const waitExit = async (): Promise<void> => {
    const proc = child;
    if (!proc || exited) return;
    await new Promise<void>((resolve) => {
      if (proc.exitCode !== null || proc.signalCode !== null) resolve();
      else proc.once('exit', () => resolve());
    });
  };

  const handle: BrokerHandle = {
    brokers,
    port: opts.port,
    pid: 0,
    nodeId,
    dataDir: opts.dataDir,
    logFile,
    stop: async () => {
      if (!exited) await stopPid(handle.pid);
      await waitExit();
    },
    crash: async () => {
      if (exited) return;
      try {
        process.kill(handle.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await waitExit();
    },
    restart: async (restartOpts) => {
      if (!exited) throw new Error(`broker ${nodeId} is still running (pid ${handle.pid})`);
      await launch(restartOpts?.noWait ?? false);
    },
    running: () => !exited,
  };
  await launch(options.noWait ?? false);
  return handle;
}

/** Polls until the broker answers metadata requests. */
export async function waitForBroker(
  brokers: string,
  timeoutMs: number,
  hasExited: () => boolean = () => false,
): Promise<void> {
  const kafka = new Kafka({
    brokers: [brokers],
    clientId: 'broker-probe',
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 1_000,
    // A listener that accepts and never answers must not hold one probe for kafkajs' default 30 s.
    requestTimeout: 2_000,
  });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (hasExited()) throw new Error('the Kafka broker process exited during start-up');
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length > 0 && cluster.controller !== null) return;
    } catch {
      // not up yet
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    if (Date.now() > deadline)
      throw new Error(`the Kafka broker at ${brokers} did not serve metadata within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** SIGTERM (Kafka shuts down cleanly on it), then SIGKILL after 20 s. */
export async function stopPid(pid: number, graceMs = 20_000): Promise<void> {
  if (!alive(pid)) return;
  try {
    process.kill(pid, 'SIGTERM');
  } catch {
    return;
  }
  const deadline = Date.now() + graceMs;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (alive(pid)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
    while (alive(pid)) await new Promise((r) => setTimeout(r, 50));
  }
}

function killAndWait(pid: number, _ms: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}

/** Reads the pid a detached broker left in its data dir, if that process still runs. */
export function runningBrokerPid(dataDir: string): number | undefined {
  const file = path.join(dataDir, 'broker.pid');
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && alive(pid) ? pid : undefined;
}
