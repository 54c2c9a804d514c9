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

/**
 * Fake kafkajs producers: each records what it was asked to send; `failures` and `failWhen` script
 * failures; a send that succeeds answers for every partition it carried, except those `unanswered` names
 * (kafkajs resolving without having sent them).
 */
function fakes(
  failures: unknown[] = [],
  failWhen?: (topicMessages: TopicMessages[]) => unknown,
  unanswered: (topic: string, partition: number | undefined) => boolean = () => false,
) {
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
        return topicMessages.flatMap((t) =>
          [...new Set(t.messages.map((m) => m.partition))]
            .filter((partition) => !unanswered(t.topic, partition))
            .map((partition) => ({ topicName: t.topic, partition: partition ?? 0, errorCode: 0 })),
        );
      },
    } as unknown as Producer;
  };
  return { made, createProducer, maxInFlight: () => maxInFlight };
}

const keeper = (createProducer: () => Producer, leaders?: (number | undefined)[]) =>
  createIdempotentProducer({
    kafka: {} as Kafka,
    logger,
    createProducer,
    partitionLayout: async () => ({ count: 3, ...(leaders ? { leaders } : {}) }),
  });

/** What kafkajs (with kafkajs-produce-outcomes.ts) throws when a broker refuses some partitions of a request. */
const refusal = (topicMessages: TopicMessages[], refused: number, errorCode: number) =>
  Object.assign(new Error('The request included a message larger than the max message size the server will accept'), {
    type: 'MESSAGE_TOO_LARGE',
    partitionOutcomes: topicMessages.flatMap((t) =>
      [...new Set(t.messages.map((m) => m.partition))].map((partition) => ({
        topic: t.topic,
        partition,
        errorCode: partition === refused ? errorCode : 0,
      })),
    ),
  });
/** Thirty keys: every partition of a 3-partition topic gets some. */
const KEYS = Array.from({ length: 30 }, (_, i) => `key-${i}`);
/** Each key as a record of topic `t`. */
const onT = (key: string) => ({ topic: 't', message: { key, value: key } });

const partitionsOf = (request: TopicMessages[]) => new Set(request.flatMap((t) => t.messages.map((m) => m.partition)));

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
    'when items span partitions of one leader, then they go in one request, and a partition the broker refuses ' +
      'fails alone with its own error while the others count as acknowledged',
    async () => {
      const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5', 'k6', 'k7'];
      const refused = partitionForKey('k0', 3);
      const f = fakes([], (topicMessages) => refusal(topicMessages, refused, 10));
      const p = keeper(f.createProducer);
      const results = await p.sendPerPartition(keys, onT);
      const partitions = new Set(keys.map((k) => partitionForKey(k, 3)));
      expect(results).toHaveLength(partitions.size);
      const requests = f.made.flatMap((m) => m.sent);
      expect(requests).toHaveLength(1);
      expect(partitionsOf(requests[0] ?? []).size).toBe(partitions.size);
      for (const r of results) {
        expect(r.items).toEqual(keys.filter((k) => partitionForKey(k, 3) === r.partition));
        expect(r.error !== undefined).toBe(r.partition === refused);
      }
      // kafkajs' own error for the refused partition's code (10): classified as a rejection, as before.
      expect(results.find((r) => r.partition === refused)?.error).toMatchObject({ type: 'MESSAGE_TOO_LARGE' });
    },
  );

  it('when a request of several partitions fails without an answer, then none of them counts as sent', async () => {
    const lost = Object.assign(new Error('Closed connection'), { name: 'KafkaJSNumberOfRetriesExceeded' });
    const f = fakes([lost]);
    const p = keeper(f.createProducer);
    const keys = ['k0', 'k1', 'k2', 'k3', 'k4', 'k5'];
    const results = await p.sendPerPartition(keys, onT);
    expect(results.length).toBeGreaterThan(1);
    for (const r of results) expect(r.error).toBe(lost);
    expect(p.generation()).toBe(1);
    expect(p.connected()).toBe(false);
  });

  it(
    'when a combined request goes unanswered, then its partitions go alone until each succeeds alone, so a ' +
      'partition that never answers does not hold the others back',
    async () => {
      const silent = partitionForKey('key-0', 3);
      const timeout = Object.assign(new Error('Request Produce timed out'), { name: 'KafkaJSRequestTimeoutError' });
      const f = fakes([], (topicMessages) => (partitionsOf(topicMessages).has(silent) ? timeout : undefined));
      const p = keeper(f.createProducer);
      const send = () => p.sendPerPartition(KEYS, onT);
      const failed = async () => (await send()).filter((r) => r.error !== undefined).map((r) => r.partition);

      expect((await failed()).length).toBe(3);
      expect(await failed()).toEqual([silent]);
      expect(await failed()).toEqual([silent]);
      const requests = f.made.flatMap((m) => m.sent).map((r) => [...partitionsOf(r)].sort());
      const others = [0, 1, 2].filter((x) => x !== silent);
      // Together; then each alone; then the two that answered together again, the silent one alone.
      expect(requests.slice(0, 1)).toEqual([[0, 1, 2]]);
      expect(requests.slice(1, 4).sort()).toEqual([[0], [1], [2]]);
      expect(requests.slice(4).sort()).toEqual([others, [silent]].sort());
    },
  );

  it(
    'when a request resolves without an answer for one of its partitions, then that partition is not ' +
      'acknowledged, and it goes alone until it is',
    async () => {
      const skipped = partitionForKey('key-0', 3);
      let answers = false;
      // Like kafkajs skipping a partition that moved to a broker which had already answered.
      const f = fakes([], undefined, (_topic, partition) => partition === skipped && !answers);
      const p = keeper(f.createProducer);
      const send = () => p.sendPerPartition(KEYS, onT);

      const first = await send();
      expect(first.filter((r) => r.error !== undefined).map((r) => r.partition)).toEqual([skipped]);
      expect(String(first.find((r) => r.partition === skipped)?.error)).toMatch(/without an answer for partition/);
      // Alone now, and still unanswered (kafkajs knows no leader for it): still not acknowledged.
      const second = await send();
      expect(second.filter((r) => r.error !== undefined).map((r) => r.partition)).toEqual([skipped]);
      answers = true;
      expect((await send()).filter((r) => r.error !== undefined)).toEqual([]);
      const requests = f.made.flatMap((m) => m.sent).map((r) => [...partitionsOf(r)].sort());
      expect(requests.filter((r) => r.length === 1 && r[0] === skipped)).toHaveLength(2);
    },
  );

  it(
    'when partitions have different leaders, then each leader gets its own request, and one without a leader ' +
      'goes alone',
    async () => {
      const f = fakes();
      // Partition 0 and 1 on broker 1, partition 2 without a leader.
      const p = keeper(f.createProducer, [1, 1, undefined]);
      await p.sendPerPartition(KEYS, onT);
      const requests = f.made.flatMap((m) => m.sent).map((r) => [...partitionsOf(r)].sort());
      expect(requests.sort()).toEqual([[0, 1], [2]]);
    },
  );
});

describe('idempotent producer keeper: the messages sent', () => {
  it('when records carry headers and a timestamp, then each goes out with them and its partition', async () => {
    const f = fakes();
    const p = keeper(f.createProducer);
    const messages = KEYS.map((key, i) => ({
      key,
      value: `v-${i}`,
      headers: { id: `id-${i}`, type: 'user.registered' },
      timestamp: String(1_700_000_000_000 + i),
    }));
    const keyless = { key: null, value: 'no key', headers: { id: 'keyless' } };
    await p.sendPerPartition([...messages, keyless], (message) => ({ topic: 't', message }));
    const sent = f.made.flatMap((m) => m.sent).flatMap((request) => request.flatMap((t) => t.messages));
    for (const [i, original] of messages.entries()) {
      expect(sent.find((m) => m.value === `v-${i}`)).toEqual({
        ...original,
        partition: partitionForKey(original.key, 3),
      });
      expect(original).not.toHaveProperty('partition');
    }
    expect(sent.find((m) => m.value === 'no key')).toEqual(keyless);
    expect(sent).toHaveLength(KEYS.length + 1);
  });
});

describe('idempotent producer keeper: requests in parallel', () => {
  it('when two sends run at once, then they go out in parallel on separate producers', async () => {
    const f = fakes();
    const p = keeper(f.createProducer);
    const items = KEYS.flatMap((key) => ['a', 'b'].map((topic) => ({ key, topic })));
    const record = (r: { key: string; topic: string }) => ({ topic: r.topic, message: { key: r.key, value: r.key } });
    await Promise.all([p.sendPerPartition(items, record), p.sendPerPartition(items, record)]);
    expect(f.maxInFlight()).toBe(2);
    // Each request: both topics, all three partitions, every item once.
    for (const request of f.made.flatMap((m) => m.sent)) {
      expect(request.map((t) => t.topic)).toEqual(['a', 'b']);
      expect(request.flatMap((t) => t.messages)).toHaveLength(items.length);
    }
  });
});
