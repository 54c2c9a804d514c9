import { Kafka, logLevel, Partitioners, type PartitionMetadata } from 'kafkajs';
import { collectMessages, type Collected } from './infra';

/**
 * What the broker holds, read back by a consumer (never a producer's or relay's own counters): every
 * record of `topic` up to the high watermarks at the time of the call.
 */
export async function readWholeTopic(brokers: string[], topic: string): Promise<Collected[]> {
  const admin = new Kafka({ brokers, clientId: 'broker-side-admin', logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  let total = 0;
  try {
    // Idempotent, non-transactional producers write no control records: one offset per record.
    const offsets = await admin.fetchTopicOffsets(topic);
    total = offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0);
  } finally {
    await admin.disconnect();
  }
  const collector = await collectMessages([topic], { brokers });
  try {
    return total === 0 ? [] : [...(await collector.waitForMessages(total))];
  } finally {
    await collector.stop();
  }
}

/** The partition kafkajs' default partitioner picks for `key` on a topic of `partitions` partitions. */
export function partitionOf(key: string, partitions: number): number {
  const partitionMetadata: PartitionMetadata[] = Array.from({ length: partitions }, (_, i) => ({
    partitionId: i,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
  return Partitioners.DefaultPartitioner()({ topic: 't', partitionMetadata, message: { key, value: null } });
}

/** `n` distinct keys (`<prefix>-<i>`) that all land on one partition. */
export function keysOnOnePartition(prefix: string, n: number, partitions = 3): string[] {
  const keys: string[] = [];
  const target = partitionOf(`${prefix}-0`, partitions);
  for (let i = 0; keys.length < n; i++)
    if (partitionOf(`${prefix}-${i}`, partitions) === target) keys.push(`${prefix}-${i}`);
  return keys;
}

/** Event ids (the `id` header) of `records`, with how often each occurs. */
export function idCounts(records: Collected[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of records) {
    const id = r.headers.id ?? '';
    counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}
