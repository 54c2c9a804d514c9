import type { Kafka, Producer, TopicMessages } from 'kafkajs';
import { createLogger } from '@shared/logger';
import { createMetricsRegistry } from '@shared/metrics';
import { createTestDatabase, uniquePrefix, type TestDatabase } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { parseRelayConfig } from '../src/config';
import { createRelay } from '../src/relay';
import { insertOutboxRows, outboxCount } from './relay-harness';

/**
 * A stand-in for kafkajs that plays a broker restart: the first producer's send fails with
 * UNKNOWN_PRODUCER_ID (the broker forgot the producer id), the producers connected while the broker is
 * "still down" fail to connect, and the next one works. Real PostgreSQL, so the claim/delete is real.
 */
function fakeKafka(script: { failingConnects: number }) {
  type FakeProducer = {
    n: number;
    connected: boolean;
    disconnects: number;
    sent: TopicMessages[];
    connectFailed: boolean;
    sendFailed: boolean;
  };
  const producers: FakeProducer[] = [];
  let connectFailuresLeft = script.failingConnects;
  let sendFailuresLeft = 1;
  const kafka = {
    admin: () => ({
      connect: async () => undefined,
      disconnect: async () => undefined,
      listTopics: async () => [] as string[],
      createTopics: async () => true,
      describeCluster: async () => ({
        brokers: [{ nodeId: 0, host: '127.0.0.1', port: 9092 }],
        controller: 0,
        clusterId: 'fake',
      }),
      fetchTopicMetadata: async ({ topics }: { topics: string[] }) => ({
        // Led partitions, as a real metadata answer (ensureTopics waits for every partition's leader).
        topics: topics.map((name) => ({
          name,
          partitions: [0, 1, 2].map((partitionId) => ({ partitionId, leader: 0, replicas: [0], isr: [0] })),
        })),
      }),
    }),
    producer: (): Producer => {
      const state: FakeProducer = {
        n: producers.length + 1,
        connected: false,
        disconnects: 0,
        sent: [],
        connectFailed: false,
        sendFailed: false,
      };
      producers.push(state);
      return {
        connect: async () => {
          // The first producer (at start) connects; then the broker "restarts": three connects fail.
          if (state.n > 1 && connectFailuresLeft > 0) {
            connectFailuresLeft -= 1;
            state.connectFailed = true;
            throw Object.assign(new Error('Connection error: connect ECONNREFUSED'), {
              name: 'KafkaJSConnectionError',
              retriable: true,
            });
          }
          state.connected = true;
        },
        disconnect: async () => {
          state.disconnects += 1;
          state.connected = false;
        },
        sendBatch: async ({ topicMessages }: { topicMessages: TopicMessages[] }) => {
          if (!state.connected) throw new Error('The producer is disconnected');
          // The first send of all goes out of sync (the broker "restarted"); the next connects fail.
          if (sendFailuresLeft > 0) {
            sendFailuresLeft -= 1;
            state.sendFailed = true;
            const cause = Object.assign(new Error('This request was not sent to the broker: unknown producer id'), {
              type: 'UNKNOWN_PRODUCER_ID',
              retriable: false,
            });
            throw Object.assign(new Error('unknown producer id'), {
              name: 'KafkaJSNonRetriableError',
              retriable: false,
              cause,
            });
          }
          state.sent.push(...topicMessages);
          // The broker's answers: every partition the request carried, appended.
          return topicMessages.flatMap((t) =>
            [...new Set(t.messages.map((m) => m.partition ?? 0))].map((partition) => ({
              topicName: t.topic,
              partition,
              errorCode: 0,
            })),
          );
        },
      } as unknown as Producer;
    },
  };
  return { kafka: kafka as unknown as Kafka, producers };
}

describe('relay producer reset', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  test(
    'when the producer goes out of sync and the broker is still down at the reset, the relay connects a new ' +
      'producer once the broker is back and publishes (the failed producers are disconnected)',
    async () => {
      const prefix = uniquePrefix('relay-reset');
      const config = parseRelayConfig({
        DATABASE_URL: db.url,
        KAFKA_TOPIC_PREFIX: prefix,
        RELAY_RETRY_BASE_MS: '20',
        RELAY_RETRY_MAX_MS: '100',
        RELAY_CONCURRENCY: '2',
      });
      const { kafka, producers } = fakeKafka({ failingConnects: 3 });
      const logger = createLogger({ service: 'relay', level: process.env.TEST_LOG_LEVEL ?? 'silent' });
      const relay = createRelay({ pool: db.pool, kafka, logger, registry: createMetricsRegistry('relay'), config });
      await insertOutboxRows(db.pool, [
        { key: 'user-1', seq: 0 },
        { key: 'user-1', seq: 1 },
        { key: 'user-2', seq: 0 },
      ]);
      await relay.start();
      try {
        await waitFor(async () => (await outboxCount(db.pool)) === 0, {
          timeoutMs: 10_000,
          message: 'outbox drained after the broker came back',
        });

        const sent = producers.flatMap((p) =>
          p.sent.flatMap((t) =>
            t.messages.map(
              (m) => `${String(m.key)}:${(JSON.parse(String(m.value)) as { payload: { seq: number } }).payload.seq}`,
            ),
          ),
        );
        expect(sent.sort()).toEqual(['user-1:0', 'user-1:1', 'user-2:0']);
        // The producer that went out of sync and the three that could not connect were each disconnected
        // (before the relay stopped); the rows went out on producers that never failed.
        const failed = producers.filter((p) => p.sendFailed || p.connectFailed);
        expect(failed.filter((p) => p.sendFailed)).toHaveLength(1);
        expect(failed.filter((p) => p.connectFailed)).toHaveLength(3);
        expect(failed.map((p) => ({ n: p.n, disconnected: p.disconnects > 0, sent: p.sent.length }))).toEqual(
          failed.map((p) => ({ n: p.n, disconnected: true, sent: 0 })),
        );
      } finally {
        await relay.stop();
      }
      expect(producers.every((p) => !p.connected)).toBe(true);
    },
  );
});
