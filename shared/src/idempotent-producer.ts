import {
  Partitioners,
  type Kafka,
  type ICustomPartitioner,
  type Message,
  type Producer,
  type RecordMetadata,
  type TopicMessages,
} from 'kafkajs';
import { errorMessage } from './errors';
import { applyProduceOutcomesPatch } from './kafkajs-produce-outcomes';
import { partitionForKey } from './murmur2';
import {
  createPartitionSender,
  partitionLayouts,
  type PartitionLayout,
  type PartitionResult,
} from './partition-sender';
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
 *    send; the keeper holds a few producers ("slots"), so that requests go out in parallel;
 * 2. after ANY failed sendBatch (outcome unknown or not), the producer is disconnected and the next send
 *    runs on a new producer (connect → InitProducerId → a new producer id, sequences from 0);
 * 3. callers delete or mark only records the broker acknowledged to an identity that had never failed
 *    before: a partition the answers of a resolved sendBatch list without error — not merely a resolved
 *    sendBatch: kafkajs resolves without sending a partition it knows no leader for, or one that moved,
 *    between its retries, to a broker that had already answered — or a partition the last answer to a
 *    failed one reports appended (kafkajs' retries resend the same records with the same sequences, so
 *    that answer is about these records); everything else stays pending.
 * `sendPerPartition` reports each partition on its own, so a failure (a rejected record, a partition
 * without a leader) is confined to that partition's records. It sends the partitions one leader has in
 * ONE request: kafkajs only reports a request's first failed partition, but kafkajs-produce-outcomes.ts
 * keeps the broker's whole answer, so the partitions it appended count as acknowledged and the others
 * fail with their own error. Without that patch (other kafkajs internals), one request per partition.
 */

export type { PartitionLayout, PartitionResult };

export type IdempotentProducer = {
  /** Connects the current producer (start-up, readiness); sends connect on their own too. */
  connect: () => Promise<void>;
  /** One produce request (acks = all) on the first slot's identity; rejects when it was not acknowledged. */
  send: (topicMessages: TopicMessages[]) => Promise<void>;
  /**
   * Groups `items` by topic-partition (keeping their order) and sends them, one request per partition
   * leader, except for partitions `skip` names (returned with `skipped`, nothing sent); one result per
   * partition.
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
  /**
   * Looks up a topic's partitions: their count and each one's leader (default: admin metadata, cached for
   * `metadataTtlMs`). Leaders unknown (undefined): all partitions count as one leader's.
   */
  partitionLayout?: (topic: string) => Promise<PartitionLayout>;
  metadataTtlMs?: number;
  /** Producer identities kept side by side (default 4): requests on different ones go out in parallel. */
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
  const partitions = opts.partitionLayout
    ? { layout: opts.partitionLayout, forget: () => undefined, close: async () => undefined }
    : partitionLayouts(opts.kafka, opts.metadataTtlMs ?? 30_000);
  const generations = { count: 0 };
  const slots = Array.from({ length: Math.max(1, opts.producers ?? 4) }, () =>
    createIdentitySlot(createProducer, log, generations),
  );
  const first = slots[0] as IdentitySlot;
  const combine = applyProduceOutcomesPatch();
  if (!combine) log.warn('kafkajs internals changed: one produce request per partition');
  const sendPerPartition = createPartitionSender({ slots, partitions, combine });
  return {
    // Every identity at once: the first sends of a burst do not wait for InitProducerId one by one.
    connect: async () => void (await Promise.all(slots.map((s) => s.connect()))),
    send: async (topicMessages) => void (await first.send(topicMessages)),
    sendPerPartition,
    generation: () => generations.count,
    connected: () => slots.some((s) => s.connected()),
    disconnect: async () => {
      await Promise.all(slots.map((s) => s.disconnect()));
      await partitions.close();
    },
  };
}

type IdentitySlot = {
  connect: () => Promise<void>;
  /** kafkajs' answer: the partitions the broker acknowledged (see partition-sender.ts on trusting it). */
  send: (topicMessages: TopicMessages[]) => Promise<RecordMetadata[]>;
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
          return await producer.sendBatch({ topicMessages, acks: -1 });
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
