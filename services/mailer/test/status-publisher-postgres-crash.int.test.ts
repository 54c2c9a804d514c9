import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createIdempotentProducer } from '@shared/idempotent-producer';
import { createKafka } from '@shared/kafka';
import { createLogger } from '@shared/logger';
import { topicNames } from '@shared/topics';
import { migrateService } from '../../../scripts/migrate';
import { idCounts, readWholeTopic } from '../../../test/support/broker-side';
import { createTopic, testBrokers, uniquePrefix } from '../../../test/support/infra';
import { crashablePostgresSuite } from '../../../test/support/private-postgres';
import { waitFor } from '../../../test/support/wait-for';
import { insertOutboxEvents, type OutboxEvent } from '../src/data-access/mailer-outbox';
import { deliveryStatusEvent } from '../src/domain/delivery-events';
import { createStatusPublisher } from '../src/entry-points/status-publisher';

/*
 * The status publisher deletes what the broker acknowledged with an asynchronous commit (no wait for the
 * WAL flush). On a PostgreSQL of the test's own whose WAL writer is paused, those deletes stay in the
 * server's memory; a crash undoes them. The statuses come back and are published again: every one in
 * the topic twice, per user in the order they were recorded, none lost. Nothing else on this server
 * may flush WAL meanwhile: no background writer or checkpoint, and autovacuum waits.
 */
const USERS = 3;
const STATUSES_PER_USER = 4;

describe('status publisher: a PostgreSQL crash after it deleted published statuses', () => {
  const db = crashablePostgresSuite((url) => migrateService({ service: 'mailer', databaseUrl: url }));
  const logger = createLogger({
    service: 'mailer',
    level: process.env.TEST_LOG_LEVEL ?? 'silent',
    destination: new Writable({ write: (_c, _e, done) => done() }),
  });

  const outboxSize = async () =>
    Number((await db.pool().query<{ n: string }>('SELECT count(*) AS n FROM mailer_outbox')).rows[0]?.n);
  /** Publishes until mailer_outbox is empty, then stops the publisher. */
  async function drain(prefix: string): Promise<void> {
    const kafka = createKafka({ brokers: testBrokers(), clientId: 'status-crash-test', logger });
    const publisher = createStatusPublisher({
      pool: db.pool(),
      producer: createIdempotentProducer({ kafka, logger }),
      topics: topicNames(prefix),
      logger,
      sweepMs: 600_000,
    });
    await publisher.connect();
    await publisher.start();
    try {
      publisher.kick();
      await waitFor(async () => (await outboxSize()) === 0, { timeoutMs: 30_000, message: 'mailer_outbox drained' });
    } finally {
      await publisher.stop();
    }
  }

  test('when the deletes were not flushed yet, then the statuses come back and go out again: in order, none lost', async () => {
    const prefix = uniquePrefix('pg-crash-status');
    const topic = topicNames(prefix).mailDeliveryStatus;
    await createTopic(topic, 3);
    const events: OutboxEvent[] = [];
    for (let attempt = 1; attempt <= STATUSES_PER_USER; attempt++)
      for (let u = 0; u < USERS; u++) {
        const status = { request_id: randomUUID(), user_id: `${prefix}u${u}`, status: 'deferred' as const };
        events.push(deliveryStatusEvent({ ...status, attempt, error_class: 'timeout' }, new Date()));
      }
    // Recorded with a commit that waits for its flush, as the mailer records an outcome: durable.
    const client = await db.pool().connect();
    await insertOutboxEvents(client, events).finally(() => client.release());
    const ids = events.map((e) => e.headers.id ?? '');

    await db.crashAfter(async () => {
      await drain(prefix);
      expect(idCounts(await readWholeTopic(testBrokers(), topic))).toEqual(new Map(ids.map((id) => [id, 1])));
    });
    expect(await outboxSize()).toBe(events.length);

    await drain(prefix);
    const held = await readWholeTopic(testBrokers(), topic);
    expect(idCounts(held)).toEqual(new Map(ids.map((id) => [id, 2])));
    for (let u = 0; u < USERS; u++) {
      const user = `${prefix}u${u}`;
      const firstSeen = [...new Set(held.filter((r) => r.key === user).map((r) => r.headers.id))];
      expect(firstSeen).toEqual(events.filter((e) => e.key === user).map((e) => e.headers.id));
    }
  }, 120_000);
});
