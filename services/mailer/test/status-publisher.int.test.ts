import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createIdempotentProducer, type IdempotentProducer } from '@shared/idempotent-producer';
import { createKafka } from '@shared/kafka';
import { createLogger } from '@shared/logger';
import { topicNames } from '@shared/topics';
import { idCounts, keysOnOnePartition, readWholeTopic } from '../../../test/support/broker-side';
import { createTestDatabase, createTopic, uniquePrefix, type TestDatabase } from '../../../test/support/infra';
import { startProxiedBroker, type ProxiedBroker } from '../../../test/support/proxied-broker';
import { waitFor } from '../../../test/support/wait-for';
import { insertOutboxEvents, type OutboxEvent } from '../src/data-access/mailer-outbox';
import { deliveryStatusEvent, dlqRecordEvent } from '../src/domain/delivery-events';
import { createStatusPublisher, type StatusPublisher } from '../src/entry-points/status-publisher';

/*
 * The status and DLQ publisher against a real broker reached through a Kafka-framing proxy: a blip (the
 * broker appends, the answers are lost six times: kafkajs' try plus five retries) and a broker that is
 * unreachable at start. What the broker holds is read back by a consumer, not by the publisher.
 */
const TRIES = 6;
const REPEAT = Number(process.env.BLIP_REPEAT ?? 1);
const runs = Array.from({ length: REPEAT }, (_, i) => (REPEAT > 1 ? ` (run ${i + 1})` : ''));

describe('status publisher against a real broker', () => {
  let env: ProxiedBroker;
  let db: TestDatabase;
  const logger = createLogger({
    service: 'mailer',
    level: process.env.TEST_LOG_LEVEL ?? 'silent',
    destination: new Writable({ write: (_c, _e, done) => done() }),
  });

  beforeAll(async () => {
    env = await startProxiedBroker();
    db = await createTestDatabase('mailer');
  }, 120_000);
  afterAll(async () => {
    await db?.drop();
    await env?.stop();
  });

  const outboxSize = async () =>
    Number((await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM mailer_outbox')).rows[0]?.n);
  async function add(events: OutboxEvent[]): Promise<void> {
    const client = await db.pool.connect();
    try {
      await insertOutboxEvents(client, events);
    } finally {
      client.release();
    }
  }
  function publisherVia(brokers: string[], prefix: string): StatusPublisher {
    const kafka = createKafka({ brokers, clientId: 'status-publisher-test', logger });
    // A long sweep: the publisher publishes when kicked, never on its own while the test sets things up.
    return createStatusPublisher({
      pool: db.pool,
      producer: createIdempotentProducer({ kafka, logger }),
      topics: topicNames(prefix),
      logger,
      sweepMs: 600_000,
    });
  }
  function statusAndDlq(userId: string): { events: OutboxEvent[]; ids: string[] } {
    const status = deliveryStatusEvent(
      { request_id: randomUUID(), user_id: userId, status: 'sent', attempt: 1, error_class: null },
      new Date(),
    );
    const requestId = randomUUID();
    const dlq = dlqRecordEvent(
      { reason: 'retries_exhausted', error: 'timeout', errorClass: 'timeout', original: '{}', requestId, userId },
      new Date(),
    );
    return { events: [status, dlq], ids: [status.headers.id ?? '', requestId] };
  }
  async function inBroker(prefix: string): Promise<Set<string>> {
    const topics = topicNames(prefix);
    const statuses = idCounts(await readWholeTopic(env.direct, topics.mailDeliveryStatus));
    const dlq = await readWholeTopic(env.direct, topics.mailRequestsDlq);
    return new Set([...statuses.keys(), ...dlq.map((r) => r.headers.request_id ?? '')]);
  }

  test.each(runs)(
    'when a blip loses the answers to statuses and DLQ records that another mailer then publishes, then what the first publishes next is in Kafka too%s',
    async () => {
      const prefix = uniquePrefix('status-blip');
      const topics = topicNames(prefix);
      await createTopic(topics.mailDeliveryStatus, 3, env.direct);
      await createTopic(topics.mailRequestsDlq, 3, env.direct);
      const [u1, u2] = keysOnOnePartition(prefix, 2);
      const first = publisherVia(env.proxied, prefix);
      let second: StatusPublisher | undefined;
      await first.connect();
      await first.start();
      try {
        const a = statusAndDlq(u1 ?? '');
        env.proxy.dropProduceResponses(TRIES);
        await add(a.events);
        first.kick();
        await waitFor(() => env.proxy.pendingDrops() === 0, { timeoutMs: 60_000, message: 'the blip is over' });
        // Another mailer instance publishes what the first could not confirm.
        second = publisherVia(env.direct, prefix);
        await second.connect();
        await second.start();
        second.kick();
        await waitFor(async () => (await outboxSize()) === 0, {
          timeoutMs: 30_000,
          message: 'the second publisher drained the outbox',
        });
        await second.stop();
        second = undefined;
        // The first publisher sends new records to the same partitions.
        const b = statusAndDlq(u2 ?? '');
        await add(b.events);
        first.kick();
        await waitFor(async () => (await outboxSize()) === 0, {
          timeoutMs: 30_000,
          message: 'the first publisher published B',
        });
        const held = await inBroker(prefix);
        expect([...a.ids, ...b.ids].filter((id) => !held.has(id))).toEqual([]);
      } finally {
        env.proxy.heal();
        await second?.stop();
        await first.stop();
      }
    },
  );

  test('when the broker cannot be reached at start, then publishing connects later and the outbox drains', async () => {
    const prefix = uniquePrefix('status-down');
    const topics = topicNames(prefix);
    await createTopic(topics.mailDeliveryStatus, 3, env.direct);
    await createTopic(topics.mailRequestsDlq, 3, env.direct);
    env.proxy.setDown(true);
    const publisher = publisherVia(env.proxied, prefix);
    try {
      await expect(publisher.connect()).rejects.toThrow();
      const a = statusAndDlq(randomUUID());
      await add(a.events);
      await publisher.start();
      env.proxy.setDown(false);
      publisher.kick();
      await waitFor(
        async () => {
          publisher.kick();
          return (await outboxSize()) === 0;
        },
        { timeoutMs: 60_000, intervalMs: 500, message: 'outbox drained once the broker was reachable' },
      );
      const held = await inBroker(prefix);
      expect(a.ids.filter((id) => !held.has(id))).toEqual([]);
    } finally {
      env.proxy.setDown(false);
      await publisher.stop();
    }
  });
});

describe('status publisher: statuses written while it waits go out together', () => {
  let db: TestDatabase;
  const logger = createLogger({
    service: 'mailer',
    level: 'silent',
    destination: new Writable({ write: (_c, _e, done) => done() }),
  });
  beforeAll(async () => {
    db = await createTestDatabase('mailer');
  });
  afterAll(async () => {
    await db?.drop();
  });

  test('when statuses arrive one by one faster than its rounds may start, then few produce calls carry them', async () => {
    /** A broker that acknowledges everything; records each call's size. */
    const calls: number[] = [];
    const producer = {
      connect: async () => undefined,
      send: async () => undefined,
      sendPerPartition: async <T>(items: T[]) => {
        calls.push(items.length);
        return [{ topic: 'status', partition: 0, items }];
      },
      generation: () => 1,
      connected: () => true,
      disconnect: async () => undefined,
    } as unknown as IdempotentProducer;
    const publisher = createStatusPublisher({
      pool: db.pool,
      producer,
      topics: topicNames(uniquePrefix('status-paced')),
      logger,
      sweepMs: 600_000,
      minIntervalMs: 500,
    });
    const event = () =>
      deliveryStatusEvent(
        { request_id: randomUUID(), user_id: randomUUID(), status: 'sent', attempt: 1, error_class: null },
        new Date(),
      );
    const outboxSize = async () =>
      Number((await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM mailer_outbox')).rows[0]?.n);
    const add = async () => {
      const client = await db.pool.connect();
      try {
        await insertOutboxEvents(client, [event()]);
      } finally {
        client.release();
      }
    };
    await publisher.start();
    try {
      await add();
      publisher.kick();
      await waitFor(async () => (await outboxSize()) === 0, { message: 'the first status published' });
      // Twenty statuses, each kicking the publisher, as twenty recorded outcomes would.
      for (let i = 0; i < 20; i++) {
        await add();
        publisher.kick();
      }
      await waitFor(async () => (await outboxSize()) === 0, { message: 'the twenty statuses published' });
    } finally {
      await publisher.stop();
    }
    expect(calls.reduce((a, b) => a + b, 0)).toBe(21);
    // Before: a round per kick that found rows (each with a produce call), plus an empty pass after each.
    expect(calls.length).toBeLessThanOrEqual(3);
  });
});
