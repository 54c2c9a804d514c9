import { EventEmitter } from 'node:events';
import { Writable } from 'node:stream';
import type { Producer } from 'kafkajs';
import { createLogger } from '@shared/logger';
import { topicNames } from '@shared/topics';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { insertOutboxEvents } from '../src/data-access/mailer-outbox';
import { deliveryStatusEvent } from '../src/domain/delivery-events';
import { createStatusPublisher } from '../src/entry-points/status-publisher';

/** A stand-in for a kafkajs producer: scripted connect/send failures, records what it sent. */
class FakeProducer extends EventEmitter {
  readonly events = { CONNECT: 'producer.connect', DISCONNECT: 'producer.disconnect' };
  sent: string[] = [];
  disconnected = false;
  constructor(private readonly script: { connectFailures?: number; sendErrors?: unknown[] }) {
    super();
  }
  async connect(): Promise<void> {
    if ((this.script.connectFailures ?? 0) > 0) {
      this.script.connectFailures = (this.script.connectFailures ?? 0) - 1;
      throw new Error('Connection error: connect ECONNREFUSED');
    }
    this.emit(this.events.CONNECT);
  }
  async disconnect(): Promise<void> {
    this.disconnected = true;
    this.emit(this.events.DISCONNECT);
  }
  async sendBatch(batch: { topicMessages: { messages: { value: string }[] }[] }): Promise<void> {
    const error = this.script.sendErrors?.shift();
    if (error) throw error;
    for (const t of batch.topicMessages) this.sent.push(...t.messages.map((m) => m.value));
  }
}

/** What kafkajs throws when the broker forgot the producer (KafkaJSNonRetriableError around a protocol error). */
function producerStateError(type: string): Error {
  const cause = Object.assign(new Error(`broker says ${type}`), { type, retriable: false });
  return Object.assign(new Error('KafkaJSNonRetriableError'), { retriable: false, cause });
}

describe('status publisher: recovers its producer', () => {
  let db: TestDatabase;
  const logger = createLogger({ service: 'mailer', level: 'error', destination: new Writable({ write: (_c, _e, done) => done() }) });

  beforeAll(async () => {
    db = await createTestDatabase('mailer');
  });
  afterAll(async () => {
    await db.drop();
  });

  async function addStatus(n: number): Promise<void> {
    const client = await db.pool.connect();
    try {
      const userId = '5b0f3c52-3c84-4b53-9a43-3d3b1f3e0a01';
      await insertOutboxEvents(client, [deliveryStatusEvent({ request_id: '8f5e8a3e-6a3c-4d1b-a1b3-6e4f7b0c2d11', user_id: userId, status: 'sent', attempt: n, error_class: null }, new Date())]);
    } finally {
      client.release();
    }
  }
  const outboxSize = async () => Number((await db.pool.query<{ n: string }>('SELECT count(*) AS n FROM mailer_outbox')).rows[0]?.n);

  it.each(['UNKNOWN_PRODUCER_ID', 'OUT_OF_ORDER_SEQUENCE_NUMBER', 'INVALID_PRODUCER_EPOCH'])(
    'when a send fails with %s, then the stuck producer is disconnected, a new one is connected and the outbox drains',
    async (type) => {
      const producers: FakeProducer[] = [];
      const scripts = [{ sendErrors: [producerStateError(type), producerStateError(type)] }, {}];
      const publisher = createStatusPublisher({
        pool: db.pool,
        topics: topicNames('t-'),
        logger,
        sweepMs: 50,
        createProducer: () => {
          const p = new FakeProducer(scripts[producers.length] ?? {});
          producers.push(p);
          return p as unknown as Producer;
        },
      });
      await publisher.connect();
      await addStatus(1);
      await publisher.start();
      try {
        await waitFor(async () => (await outboxSize()) === 0, { timeoutMs: 5_000, message: 'outbox drained' });
        expect(producers).toHaveLength(2);
        expect(producers[0]?.disconnected).toBe(true);
        expect(producers[0]?.sent).toEqual([]);
        expect(producers[1]?.sent).toHaveLength(1);
      } finally {
        await publisher.stop();
      }
      expect(producers[1]?.disconnected).toBe(true);
    },
  );

  it('when a send fails transiently, keeps the producer and retries', async () => {
    const producers: FakeProducer[] = [];
    const publisher = createStatusPublisher({
      pool: db.pool,
      topics: topicNames('t-'),
      logger,
      sweepMs: 50,
      createProducer: () => {
        const p = new FakeProducer({ sendErrors: [Object.assign(new Error('leader not available'), { type: 'LEADER_NOT_AVAILABLE', retriable: true })] });
        producers.push(p);
        return p as unknown as Producer;
      },
    });
    await publisher.connect();
    await addStatus(2);
    await publisher.start();
    try {
      await waitFor(async () => (await outboxSize()) === 0, { timeoutMs: 5_000, message: 'outbox drained' });
      expect(producers).toHaveLength(1);
    } finally {
      await publisher.stop();
    }
  });

  it('when the producer could not connect at start (broker down), publishing connects it later', async () => {
    const producer = new FakeProducer({ connectFailures: 3 });
    const publisher = createStatusPublisher({ pool: db.pool, topics: topicNames('t-'), logger, sweepMs: 50, createProducer: () => producer as unknown as Producer });
    await expect(publisher.connect()).rejects.toThrow(/ECONNREFUSED/);
    await addStatus(3);
    await publisher.start();
    try {
      await waitFor(async () => (await outboxSize()) === 0, { timeoutMs: 5_000, message: 'outbox drained' });
      expect(producer.sent).toHaveLength(1);
    } finally {
      await publisher.stop();
    }
  });
});
