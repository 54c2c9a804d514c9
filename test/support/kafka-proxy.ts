import { createServer, connect, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of one Kafka listener that understands Kafka's framing (int32 size, then for a
 * request int16 api key, int16 api version, int32 correlation id; for a response int32 correlation id).
 * Everything is forwarded; on demand it swallows the answers to Produce requests — the broker has
 * appended the records, the client never learns it — and closes the client's connection at that moment,
 * as a network blip would (kafkajs then sees "Closed connection" and retries through a new connection).
 *
 * Used with a broker listener advertised at the proxy's port (infra/kafka/broker.ts `extraListeners`):
 * a client bootstrapped through the proxy then sends everything through it.
 */
export type ProduceRequestSeen = {
  correlationId: number;
  apiVersion: number;
  topics: string[];
  partitions: string[];
  at: number;
};

export type KafkaProxy = {
  port: number;
  /**
   * Swallow the next `n` Produce answers (only of requests naming `topic`, when given, and partition
   * `partition` of it, when given). `Infinity`: until heal().
   */
  dropProduceResponses: (n: number, topic?: string, partition?: number) => void;
  /** Produce answers swallowed so far. */
  dropped: () => number;
  /** Produce answers still to swallow (0 once the blip is over). */
  pendingDrops: () => number;
  /** Produce requests forwarded so far (in order). */
  produceRequests: ProduceRequestSeen[];
  /** Stop swallowing (whatever is left of `n`). */
  heal: () => void;
  /** While down, new connections are closed at once (a broker that cannot be reached). */
  setDown: (down: boolean) => void;
  close: () => Promise<void>;
};

const PRODUCE = 0;

/** Splits a byte stream into Kafka frames (4-byte big-endian size + payload). */
function framer(onFrame: (frame: Buffer) => void): (chunk: Buffer) => void {
  let buffered: Buffer = Buffer.alloc(0);
  return (chunk) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 4) {
      const size = buffered.readInt32BE(0);
      if (buffered.length < 4 + size) return;
      onFrame(buffered.subarray(0, 4 + size));
      buffered = buffered.subarray(4 + size);
    }
  };
}

/**
 * Topic names and `topic:partition` pairs of a Produce request, versions 3–8 (what kafkajs 2.x sends;
 * v0–2 have no transactional id).
 */
export function produceTopics(frame: Buffer, apiVersion: number): { topics: string[]; partitions: string[] } {
  let at = 4 + 2 + 2 + 4;
  const clientIdLength = frame.readInt16BE(at);
  at += 2 + Math.max(0, clientIdLength);
  if (apiVersion >= 3) {
    const txLength = frame.readInt16BE(at);
    at += 2 + Math.max(0, txLength);
  }
  at += 2 + 4; // acks, timeout
  const topicCount = frame.readInt32BE(at);
  at += 4;
  const topics: string[] = [];
  const partitions: string[] = [];
  for (let t = 0; t < topicCount; t++) {
    const nameLength = frame.readInt16BE(at);
    at += 2;
    const topic = frame.toString('utf8', at, at + nameLength);
    topics.push(topic);
    at += nameLength;
    const partitionCount = frame.readInt32BE(at);
    at += 4;
    for (let p = 0; p < partitionCount; p++) {
      partitions.push(`${topic}:${frame.readInt32BE(at)}`);
      at += 4;
      const recordsLength = frame.readInt32BE(at);
      at += 4 + Math.max(0, recordsLength);
    }
  }
  return { topics, partitions };
}

export async function startKafkaProxy(opts: {
  listenPort: number;
  targetPort: number;
  host?: string;
}): Promise<KafkaProxy> {
  const host = opts.host ?? '127.0.0.1';
  const sockets = new Set<Socket>();
  const produceRequests: ProduceRequestSeen[] = [];
  let toDrop = 0;
  let dropTopic: string | undefined;
  let dropPartition: number | undefined;
  let dropped = 0;
  let down = false;

  const server: Server = createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = connect(opts.targetPort, host);
    sockets.add(client).add(upstream);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    const pendingProduce = new Map<number, { topics: string[]; partitions: string[] }>();
    const closeBoth = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', () => {
      sockets.delete(client);
      upstream.destroy();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.on('error', closeBoth);
    upstream.on('error', closeBoth);

    client.on(
      'data',
      framer((frame) => {
        const apiKey = frame.readInt16BE(4);
        if (apiKey === PRODUCE) {
          const apiVersion = frame.readInt16BE(6);
          const correlationId = frame.readInt32BE(8);
          const named = produceTopics(frame, apiVersion);
          pendingProduce.set(correlationId, named);
          produceRequests.push({ correlationId, apiVersion, ...named, at: Date.now() });
        }
        upstream.write(frame);
      }),
    );
    upstream.on(
      'data',
      framer((frame) => {
        const correlationId = frame.readInt32BE(4);
        const named = pendingProduce.get(correlationId);
        pendingProduce.delete(correlationId);
        const matches =
          named !== undefined &&
          (dropTopic === undefined || named.topics.includes(dropTopic)) &&
          (dropPartition === undefined || named.partitions.includes(`${dropTopic}:${dropPartition}`));
        if (matches && toDrop > 0) {
          toDrop -= 1;
          dropped += 1;
          closeBoth();
          return;
        }
        client.write(frame);
      }),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.listenPort, host, () => resolve());
  });

  return {
    port: opts.listenPort,
    dropProduceResponses: (n, topic, partition) => {
      toDrop = n;
      dropTopic = topic;
      dropPartition = partition;
    },
    dropped: () => dropped,
    pendingDrops: () => toDrop,
    produceRequests,
    heal: () => {
      toDrop = 0;
    },
    setDown: (value) => {
      down = value;
      if (value) for (const s of sockets) s.destroy();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
