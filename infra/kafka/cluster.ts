import path from 'node:path';
import { Kafka, logLevel } from 'kafkajs';
import { newClusterId, startKafkaBroker, type BrokerHandle } from './broker';

/**
 * A KRaft cluster of `size` combined broker+controller nodes on one machine, from the same jars as the
 * single broker: node i (1-based) serves clients on ports[i-1] and its controller on controllerPorts[i-1],
 * with its own data directory `<dataDir>/node-<i>`. With 3 nodes every internal and default topic has
 * replication 3 and min.insync.replicas 2, and unclean leader election is off (see broker.ts), so a
 * SIGKILL of any one node loses no acknowledged record.
 */
export type ClusterOptions = {
  size: number;
  ports: number[];
  controllerPorts: number[];
  dataDir: string;
  /** JVM heap per node (default 384 MiB: three nodes fit beside the services on a small machine). */
  heapMb?: number;
  partitions?: number;
  /** Each node in a process group of its own (npm start: a terminal's Ctrl-C must not reach Kafka). */
  detached?: boolean;
};

export type KafkaCluster = {
  /** The bootstrap list, comma-separated (what KAFKA_BROKERS gets). */
  brokers: string;
  nodes: BrokerHandle[];
  replicationFactor: number;
  /** The node that leads `topic`'s `partition` right now (from the cluster's metadata). */
  leaderOf: (topic: string, partition: number) => Promise<BrokerHandle>;
  /** Resolves once every running node is back in the ISR of every partition of `topics`. */
  waitInSync: (topics: string[], timeoutMs?: number) => Promise<void>;
  stop: () => Promise<void>;
};

export async function startKafkaCluster(opts: ClusterOptions): Promise<KafkaCluster> {
  const { size } = opts;
  if (opts.ports.length < size || opts.controllerPorts.length < size)
    throw new Error(`a ${size}-node cluster needs ${size} ports and ${size} controller ports`);
  const voters = Array.from({ length: size }, (_, i) => `${i + 1}@127.0.0.1:${opts.controllerPorts[i]}`).join(',');
  const replicationFactor = Math.min(3, size);
  const clusterId = newClusterId();
  // A KRaft quorum needs a majority of voters: start every node first, then wait for all of them.
  const nodes = await Promise.all(
    Array.from({ length: size }, (_, i) =>
      startKafkaBroker({
        nodeId: i + 1,
        port: opts.ports[i] as number,
        controllerPort: opts.controllerPorts[i] as number,
        quorumVoters: voters,
        clusterId,
        replicationFactor,
        dataDir: path.join(opts.dataDir, `node-${i + 1}`),
        heapMb: opts.heapMb ?? 384,
        partitions: opts.partitions ?? 3,
        noWait: true,
        ...(opts.detached ? { detached: true } : {}),
      }),
    ),
  );
  const brokers = nodes.map((n) => n.brokers).join(',');
  try {
    await waitForClusterSize(brokers, size, 120_000);
  } catch (err) {
    await Promise.all(nodes.map((n) => n.crash()));
    throw err;
  }
  const admin = () =>
    new Kafka({
      brokers: brokers.split(','),
      clientId: 'cluster-probe',
      logLevel: logLevel.NOTHING,
      retry: { retries: 2 },
    }).admin();
  return {
    brokers,
    nodes,
    replicationFactor,
    leaderOf: async (topic, partition) => {
      const a = admin();
      await a.connect();
      try {
        const meta = await a.fetchTopicMetadata({ topics: [topic] });
        const leader = meta.topics[0]?.partitions.find((p) => p.partitionId === partition)?.leader;
        const node = nodes.find((n) => n.nodeId === leader);
        if (!node) throw new Error(`no leader for ${topic}[${partition}] (metadata says ${String(leader)})`);
        return node;
      } finally {
        await a.disconnect();
      }
    },
    waitInSync: async (topics, timeoutMs = 60_000) => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const running = nodes.filter((n) => n.running()).length;
        const a = admin();
        try {
          await a.connect();
          const meta = await a.fetchTopicMetadata({ topics });
          if (meta.topics.every((t) => t.partitions.every((p) => p.isr.length >= running && p.leader >= 0))) return;
        } catch {
          // a node is still starting: ask again
        } finally {
          await a.disconnect().catch(() => undefined);
        }
        if (Date.now() > deadline)
          throw new Error(`partitions of ${topics.join(',')} not in sync within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, 500));
      }
    },
    stop: async () => {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}

/** Polls until the cluster's metadata lists `size` brokers and a controller. */
export async function waitForClusterSize(brokers: string, size: number, timeoutMs: number): Promise<void> {
  const kafka = new Kafka({
    brokers: brokers.split(','),
    clientId: 'cluster-probe',
    logLevel: logLevel.NOTHING,
    retry: { retries: 0 },
    connectionTimeout: 1_000,
  });
  const deadline = Date.now() + timeoutMs;
  let seen = 0;
  for (;;) {
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      seen = cluster.brokers.length;
      if (seen >= size && cluster.controller !== null) return;
    } catch {
      // not up yet
    } finally {
      await admin.disconnect().catch(() => undefined);
    }
    if (Date.now() > deadline)
      throw new Error(`the Kafka cluster at ${brokers} showed ${seen} of ${size} brokers within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 500));
  }
}
