import { Writable } from 'node:stream';
import type { Kafka, Producer, TopicMessages } from 'kafkajs';
import { createIdempotentProducer } from './idempotent-producer';
import { partitionForKey } from './murmur2';
import { createLogger } from './logger';

const logger = createLogger({
  service: 'test',
  level: 'silent',
  destination: new Writable({ write: (_c, _e, done) => done() }),
});

/** Fake kafkajs producers: each records what it was asked to send; `failNext` scripts failures. */
function fakes(failures: unknown[] = [], failWhen?: (topicMessages: TopicMessages[]) => unknown) {
  const made: { n: number; sent: TopicMessages[][]; disconnected: boolean }[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const createProducer = (): Producer => {
    const state = { n: made.length + 1, sent: [] as TopicMessages[][], disconnected: false };
    made.push(state);
    return {
      connect: async () => undefined,
      disconnect: async () => {
        state.disconnected = true;
      },
      sendBatch: async ({ topicMessages }: { topicMessages: TopicMessages[] }) => {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((r) => setImmediate(r));
        inFlight -= 1;
        state.sent.push(topicMessages);
        const failure = failWhen?.(topicMessages) ?? failures.shift();
        if (failure) throw failure;
        return [];
      },
    } as unknown as Producer;
  };
  return { made, createProducer, maxInFlight: () => maxInFlight };
}

const keeper = (createProducer: () => Producer) =>
  createIdempotentProducer({ kafka: {} as Kafka, logger, createProducer, partitionCount: async () => 3 });

describe('idempotent producer keeper', () => {
  it.each([
    [
      'an exhausted retry after lost answers',
      Object.assign(new Error('Closed connection'), { name: 'KafkaJSNumberOfRetriesExceeded', retriable: false }),
    ],
    [
      'a request timeout',
      Object.assign(new Error('Request Produce timed out'), { name: 'KafkaJSRequestTimeoutError', retriable: true }),
    ],
    ['a record too large', Object.assign(new Error('too large'), { type: 'MESSAGE_TOO_LARGE', retriable: false })],
  ])(
    'when a send fails with %s, then the producer is disconnected and the next send goes out on a new one',
    async (_label, error) => {
      const f = fakes([error]);
      const p = keeper(f.createProducer);
      await expect(p.send([{ topic: 't', messages: [{ key: 'a', value: '1' }] }])).rejects.toBe(error);
      expect(p.connected()).toBe(false);
      await p.send([{ topic: 't', messages: [{ key: 'b', value: '2' }] }]);
      expect(f.made).toHaveLength(2);
      expect(f.made[0]?.disconnected).toBe(true);
      expect(f.made[0]?.sent).toHaveLength(1);
      expect(f.made[1]?.sent.flat().flatMap((t) => t.messages.map((m) => m.value))).toEqual(['2']);
      expect(p.generation()).toBe(2);
    },
  );

  it(
    'when sends are started concurrently, then only one is in flight at a time and one queued behind a failure ' +
      'uses the new producer',
    async () => {
      const f = fakes([new Error('Closed connection')]);
      const p = keeper(f.createProducer);
      const first = p.send([{ topic: 't', messages: [{ key: 'a', value: '1' }] }]);
      const second = p.send([{ topic: 't', messages: [{ key: 'b', value: '2' }] }]);
      await expect(first).rejects.toThrow('Closed connection');
      await second;
      expect(f.maxInFlight()).toBe(1);
      expect(f.made.map((m) => m.sent.length)).toEqual([1, 1]);
    },
  );

  it(
    'when items span partitions, then each partition is one request in the order given, and a partition the ' +
      'broker refuses fails alone',
    async () => {
      const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'];
      const refused = partitionForKey('k0', 3);
      // Like a partition without a leader: every request carrying it fails.
      const f = fakes([], (topicMessages) =>
        topicMessages.some((t) => t.messages.some((m) => m.partition === refused))
          ? new Error('leader not available')
          : undefined,
      );
      const p = keeper(f.createProducer);
      const results = await p.sendPerPartition(keys, (key) => ({ topic: 't', message: { key, value: key } }));
      const partitions = new Set(keys.map((k) => partitionForKey(k, 3)));
      expect(results).toHaveLength(partitions.size);
      // Never two partitions in one request: refused records would otherwise take the others down too.
      const requests = f.made.flatMap((m) => m.sent);
      for (const r of requests) expect(new Set(r.flatMap((t) => t.messages.map((m) => m.partition))).size).toBe(1);
      for (const r of results) {
        expect(r.items).toEqual(keys.filter((k) => partitionForKey(k, 3) === r.partition));
        expect(r.error !== undefined).toBe(r.partition === refused);
      }
    },
  );
});

describe('idempotent producer keeper: partitions in parallel', () => {
  it(
    'when several partitions are sent at once, then they go out in parallel on separate producers, and one ' +
      'partition always uses the same producer',
    async () => {
      const f = fakes();
      const p = keeper(f.createProducer);
      const keys = Array.from({ length: 30 }, (_, i) => `key-${i}`);
      const topics = ['a', 'b'];
      await p.sendPerPartition(
        keys.flatMap((key) => topics.map((topic) => ({ key, topic }))),
        (r) => ({ topic: r.topic, message: { key: r.key, value: r.key } }),
      );
      await p.sendPerPartition(
        keys.flatMap((key) => topics.map((topic) => ({ key, topic }))),
        (r) => ({ topic: r.topic, message: { key: r.key, value: r.key } }),
      );
      expect(f.maxInFlight()).toBeGreaterThan(1);
      const producerOf = new Map<string, number>();
      for (const made of f.made) {
        for (const request of made.sent.flat()) {
          for (const m of request.messages) {
            const id = `${request.topic}:${m.partition}`;
            expect(producerOf.get(id) ?? made.n).toBe(made.n);
            producerOf.set(id, made.n);
          }
        }
      }
      expect(producerOf.size).toBe(6);
    },
  );
});
