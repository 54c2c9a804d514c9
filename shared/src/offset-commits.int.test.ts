import { Writable } from 'node:stream';
import type { Consumer, Kafka } from 'kafkajs';
import { createTopic, testKafka, uniquePrefix } from '../../test/support/infra';
import { waitFor } from '../../test/support/wait-for';
import { createLogger } from './logger';
import { createOffsetCommitter } from './offset-commits';

const logger = createLogger({
  service: 'test',
  level: 'silent',
  destination: new Writable({ write: (_c, _e, done) => done() }),
});

async function committedOffset(kafka: Kafka, groupId: string, topic: string): Promise<number> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const [entry] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return Number(entry?.partitions.find((p) => p.partition === 0)?.offset ?? -1);
  } finally {
    await admin.disconnect();
  }
}

/** A consumer of `topic` (one partition) whose offsets go through the committer; counts OffsetCommit requests. */
async function consume(kafka: Kafka, topic: string, groupId: string, intervalMs: number) {
  const consumer: Consumer = kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
  const commits = createOffsetCommitter({ logger, intervalMs });
  let consumed = 0;
  let commitRequests = 0;
  consumer.on(consumer.events.COMMIT_OFFSETS, () => (commitRequests += 1));
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatchAutoResolve: false,
    ...commits.runOptions,
    eachBatch: async ({ batch, resolveOffset }) => {
      for (const m of batch.messages) {
        resolveOffset(m.offset);
        commits.resolved(batch.topic, batch.partition, m.offset);
        consumed += 1;
      }
    },
  });
  commits.start(consumer);
  return {
    consumed: () => consumed,
    commitRequests: () => commitRequests,
    stop: async () => {
      await commits.stop();
      await consumer.disconnect();
    },
  };
}

async function produceOneByOne(kafka: Kafka, topic: string, count: number): Promise<void> {
  const producer = kafka.producer();
  await producer.connect();
  for (let i = 0; i < count; i++) await producer.send({ topic, messages: [{ key: 'k', value: String(i) }] });
  await producer.disconnect();
}

describe('offset commits at most once per interval', () => {
  const kafka = testKafka('offset-commits-test');

  it('when messages arrive one batch at a time, then stop commits them all in one request', async () => {
    const topic = `${uniquePrefix('oc')}t`;
    const groupId = `${topic}.g`;
    await createTopic(topic, 1);
    const c = await consume(kafka, topic, groupId, 600_000);
    await produceOneByOne(kafka, topic, 20);
    await waitFor(() => c.consumed() === 20, { timeoutMs: 30_000 });
    expect(await committedOffset(kafka, groupId, topic)).toBe(-1);
    await c.stop();
    expect(c.commitRequests()).toBe(1);
    expect(await committedOffset(kafka, groupId, topic)).toBe(20);
  });

  it('when a partition goes quiet, then its last offsets are committed by the timer, without a new batch', async () => {
    const topic = `${uniquePrefix('oc')}t`;
    const groupId = `${topic}.g`;
    await createTopic(topic, 1);
    const c = await consume(kafka, topic, groupId, 200);
    try {
      await produceOneByOne(kafka, topic, 5);
      await waitFor(() => c.consumed() === 5, { timeoutMs: 30_000 });
      await waitFor(async () => (await committedOffset(kafka, groupId, topic)) === 5, { timeoutMs: 30_000 });
    } finally {
      await c.stop();
    }
  });
});
