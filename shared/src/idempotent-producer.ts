import {
  Partitioners,
  type Admin,
  type Kafka,
  type ICustomPartitioner,
  type Message,
  type Producer,
  type TopicMessages,
} from 'kafkajs';
import { errorMessage } from './errors';
import { partitionForKey } from './murmur2';
import type { Logger } from './logger';

/*
 * The rule, re-derived from kafkajs 2.2.4 (src/producer/sendMessages.js, src/producer/eosManager):
 *
 * - Sequence numbers live in the producer's eosManager, per topic-partition. sendMessages takes the
 *   broker's mutex (eosManager.acquireBrokerLock, one lock per broker node id), reads each partition's
 *   sequence as the batch's firstSequence, advances it by the batch's record count, and calls
 *   broker.produce. Produce requests of one producer to one broker are thus serialized; requests to
 *   different brokers are not.
 * - If broker.produce throws — a lost connection, a request timeout, or an error code for ANY partition
 *   of the response (the response parser throws on the first one) — the sequences of EVERY partition of
 *   that request are rolled back, including partitions the broker has appended. kafkajs' own retries
 *   then resend the same records with the same sequences: the broker recognises them as duplicates,
 *   which is correct because they are the same records.
 * - Once sendBatch gives up (retries exhausted, or a non-retriable error), the rolled-back sequences
 *   stay. The next send on the same producer gives OTHER records a sequence the broker has already
 *   seen: it answers "duplicate, success" with the first batch's offset and appends nothing. Whoever
 *   deletes rows on that answer has lost them. The broker lock does not help: it is released before our
 *   caller hears of the failure, so a send queued behind it goes out with the rolled-back sequence.
 *
 * Hence, for every idempotent producer of this project:
 * 1. one sendBatch at a time per producer (each slot's chain below), so nothing is queued behind a failing
 *    send; the keeper holds a few producers ("slots") and routes each topic-partition always to the same
 *    one, so different partitions go out in parallel while each partition's requests stay in order;
 * 2. after ANY failed sendBatch (outcome unknown or not), the producer is disconnected and the next send
 *    runs on a new producer (connect → InitProducerId → a new producer id, sequences from 0);
 * 3. callers delete or mark only records whose sendBatch resolved — acknowledged by an identity that had
 *    never failed — and keep everything else pending.
 * `sendPerPartition` sends one request per partition, so a failure (a rejected record, a partition
 * without a leader) is confined to that partition's records.
 */

export type PartitionResult<T> = {
  topic: string;
  /** -1 for records without a key (kafkajs spreads them; they form one group per topic). */
  partition: number;
  /** The caller's items in the order given. */
  items: T[];
  /** Set when this partition's request failed: none of `items` counts as acknowledged. */
  error?: unknown;
  /** Not sent: the caller asked to skip this partition. */
  skipped?: true;
};

export type IdempotentProducer = {
  /** Connects the current producer (start-up, readiness); sends connect on their own too. */
  connect: () => Promise<void>;
  /** One produce request (acks = all) on the first slot's identity; rejects when it was not acknowledged. */
  send: (topicMessages: TopicMessages[]) => Promise<void>;
  /**
   * Groups `items` by topic-partition (keeping their order) and sends one request per partition, except
   * for partitions `skip` names (returned with `skipped`, nothing sent).
   */
  sendPerPartition: <T>(
    items: T[],
    record: (item: T) => { topic: string; message: Message },
    skip?: (topic: string, partition: number) => boolean,
  ) => Promise<PartitionResult<T>[]>;
  /** How many producer identities have been connected so far (tests, logs). */
  generation: () => number;
  /** Whether a producer identity is connected now (none after a failure until the next send). */
  connected: () => boolean;
  disconnect: () => Promise<void>;
};

export type IdempotentProducerOptions = {
  kafka: Kafka;
  logger: Logger;
  /** Overrides the producer factory (tests). */
  createProducer?: () => Producer;
  /** Looks up a topic's partition count (default: admin metadata, cached for `metadataTtlMs`). */
  partitionCount?: (topic: string) => Promise<number>;
  metadataTtlMs?: number;
  /**
   * Producer identities kept side by side (default 4). Each topic-partition always uses the same one,
   * so different partitions are sent in parallel while one partition's requests stay serialized.
   */
  producers?: number;
};

export function createIdempotentProducer(opts: IdempotentProducerOptions): IdempotentProducer {
  const log = opts.logger.child({ component: 'idempotent-producer' });
  const createProducer =
    opts.createProducer ??
    (() =>
      opts.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        allowAutoTopicCreation: false,
        createPartitioner: explicitPartitioner,
      }));
  const partitions = opts.partitionCount
    ? { count: opts.partitionCount, forget: () => undefined, close: async () => undefined }
    : partitionCounts(opts.kafka, opts.metadataTtlMs ?? 30_000);
  const generations = { count: 0 };
  const slots = Array.from({ length: Math.max(1, opts.producers ?? 4) }, () =>
    createIdentitySlot(createProducer, log, generations),
  );
  const first = slots[0] as IdentitySlot;
  /** A partition always uses the same slot: its requests stay in order on one identity at a time. */
  const slotOf = (topic: string, partition: number): IdentitySlot =>
    slots[partitionForKey(`${partition}:${topic}`, slots.length)] ?? first;

  const sendPerPartition: IdempotentProducer['sendPerPartition'] = async (items, record, skip) => {
    type T = (typeof items)[number];
    const groups = new Map<string, PartitionGroup<T>>();
    const counts = new Map<string, number>();
    for (const item of items) {
      const { topic, message } = record(item);
      let count = counts.get(topic);
      if (count === undefined) counts.set(topic, (count = await partitions.count(topic)));
      const partition = message.key === null || message.key === undefined ? -1 : partitionForKey(message.key, count);
      const id = `${partition}:${topic}`;
      let group = groups.get(id);
      if (!group) {
        group = { topic, partition, items: [], messages: [] };
        groups.set(id, group);
      }
      group.items.push(item);
      group.messages.push(partition >= 0 ? { ...message, partition } : message);
    }
    // Partitions go out in parallel on their slots; each partition's request waits for its slot. One
    // request per partition, never several in one: when the broker refuses one partition's records (a
    // record too large), it has appended the others of the same request, but kafkajs reports only the
    // error — resending them would duplicate them.
    return Promise.all(
      [...groups.values()].map(async ({ messages, ...group }): Promise<PartitionResult<T>> => {
        if (skip?.(group.topic, group.partition)) return { ...group, skipped: true };
        try {
          await slotOf(group.topic, group.partition).send([{ topic: group.topic, messages }]);
          return group;
        } catch (error) {
          partitions.forget(group.topic);
          return { ...group, error };
        }
      }),
    );
  };

  return {
    // Every identity at once: the first sends of a burst do not wait for InitProducerId one by one.
    connect: async () => void (await Promise.all(slots.map((s) => s.connect()))),
    send: (topicMessages) => first.send(topicMessages),
    sendPerPartition,
    generation: () => generations.count,
    connected: () => slots.some((s) => s.connected()),
    disconnect: async () => {
      await Promise.all(slots.map((s) => s.disconnect()));
      await partitions.close();
    },
  };
}

type PartitionGroup<T> = PartitionResult<T> & { messages: Message[] };

type IdentitySlot = {
  connect: () => Promise<void>;
  send: (topicMessages: TopicMessages[]) => Promise<void>;
  connected: () => boolean;
  disconnect: () => Promise<void>;
};

/** One producer identity at a time: its sends serialized, retired after any failed send. */
function createIdentitySlot(createProducer: () => Producer, log: Logger, generations: { count: number }): IdentitySlot {
  let current: Producer | undefined;
  let connecting: Promise<void> | undefined;
  let chain: Promise<unknown> = Promise.resolve();
  const serialize = <T>(work: () => Promise<T>): Promise<T> => {
    const next = chain.then(work, work);
    chain = next.catch(() => undefined);
    return next;
  };

  /** Only ever called inside the chain. */
  const ensure = async (): Promise<Producer> => {
    if (current) return current;
    const fresh = createProducer();
    try {
      await fresh.connect();
    } catch (err) {
      await fresh.disconnect().catch(() => undefined);
      throw err;
    }
    current = fresh;
    generations.count += 1;
    return fresh;
  };

  const retire = async (failed: Producer, err: unknown): Promise<void> => {
    if (current === failed) current = undefined;
    log.warn(
      { err: { message: errorMessage(err) } },
      'a send failed: retiring the producer (the next send uses a new producer id)',
    );
    await failed.disconnect().catch(() => undefined);
  };

  return {
    // Connected already: return at once (not behind a send in progress). Callers asking at once (the
    // relay's loops while the broker is down) share one connect attempt.
    connect: () =>
      current
        ? Promise.resolve()
        : (connecting ??= serialize(async () => void (await ensure())).finally(() => {
            connecting = undefined;
          })),
    send: (topicMessages) =>
      serialize(async () => {
        const producer = await ensure();
        try {
          await producer.sendBatch({ topicMessages, acks: -1 });
        } catch (err) {
          await retire(producer, err);
          throw err;
        }
      }),
    connected: () => current !== undefined,
    disconnect: () =>
      serialize(async () => {
        const producer = current;
        current = undefined;
        await producer?.disconnect();
      }),
  };
}

/**
 * The producers' partitioner: a message's own partition first (sendPerPartition sets it), then the
 * key's murmur2 (the partition kafkajs' default picks, without its per-operation Long objects), and
 * kafkajs' default for a message with neither (it spreads them).
 */
export const explicitPartitioner: ICustomPartitioner = () => {
  const fallback = Partitioners.DefaultPartitioner();
  return (args) => {
    const { message, partitionMetadata } = args;
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    if (message.key !== null && message.key !== undefined)
      return partitionForKey(message.key, partitionMetadata.length);
    return fallback(args);
  };
};

/** Partition counts from the cluster's metadata, cached per topic for `ttlMs`. */
function partitionCounts(kafka: Kafka, ttlMs: number) {
  const cache = new Map<string, { count: number; at: number }>();
  let admin: Admin | undefined;
  const count = async (topic: string): Promise<number> => {
    const hit = cache.get(topic);
    if (hit && Date.now() - hit.at < ttlMs) return hit.count;
    try {
      admin ??= kafka.admin();
      await admin.connect();
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      const n = topics[0]?.partitions.length ?? 0;
      if (n <= 0) throw new Error(`topic ${topic} has no partitions in the cluster's metadata`);
      cache.set(topic, { count: n, at: Date.now() });
      return n;
    } catch (err) {
      const stale = admin;
      admin = undefined;
      await stale?.disconnect().catch(() => undefined);
      throw err;
    }
  };
  return {
    count,
    forget: (topic: string) => cache.delete(topic),
    close: async () => {
      await admin?.disconnect().catch(() => undefined);
      admin = undefined;
    },
  };
}
