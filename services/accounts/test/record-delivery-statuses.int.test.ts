import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import {
  buildEnvelope,
  EVENT_TYPE,
  type DeliveryStatus,
  type Envelope,
  type MailDeliveryStatusPayload,
} from '@shared/events';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { createRecordDeliveryStatuses } from '../src/domain/record-delivery-status';
import { createAccountsMetrics } from '../src/metrics';

/**
 * The delivery-status consumer stores a whole Kafka batch in one transaction. Whatever the batch holds
 * (duplicates, stale statuses, several events for one request, requests with and without a stored
 * row), the stored state and the outcomes must be exactly those of applying the events one at a time.
 */
describe('delivery statuses recorded as one batch', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => db.drop());

  const record = () =>
    createRecordDeliveryStatuses({
      pool: db.pool,
      metrics: createAccountsMetrics(new Registry()),
      clock: { now: () => new Date() },
      consumerName: 'batch-test',
    });

  /** A small deterministic PRNG, so a failure names a replayable seed. */
  const prng = (seed: number) => () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  const STATUSES: DeliveryStatus[] = ['queued', 'deferred', 'sent', 'failed'];

  type Scenario = {
    queued: boolean;
    events: { request: number; status: DeliveryStatus; attempt: number; smtp: boolean; repeat: number | null }[];
  };
  function scenario(seed: number): Scenario {
    const rnd = prng(seed);
    const events: Scenario['events'] = [];
    for (let i = 0; i < 12; i++) {
      const repeat = i > 0 && rnd() < 0.2 ? Math.floor(rnd() * i) : null;
      events.push({
        request: Math.floor(rnd() * 3),
        status: STATUSES[Math.floor(rnd() * 4)] as DeliveryStatus,
        attempt: Math.floor(rnd() * 4),
        smtp: rnd() < 0.5,
        repeat,
      });
    }
    return { queued: rnd() < 0.5, events };
  }

  /** The scenario's events over fresh request ids (a repeat reuses an earlier event's envelope: a redelivery). */
  async function materialize(s: Scenario): Promise<Envelope<MailDeliveryStatusPayload>[]> {
    const requests = [0, 1, 2].map(() => ({ requestId: randomUUID(), userId: randomUUID() }));
    if (s.queued) {
      for (const r of requests) {
        await db.pool.query(
          `INSERT INTO mail_delivery_status (request_id, user_id, status, attempt) VALUES ($1, $2, 'queued', 0)`,
          [r.requestId, r.userId],
        );
      }
    }
    const out: Envelope<MailDeliveryStatusPayload>[] = [];
    for (const e of s.events) {
      if (e.repeat !== null) {
        out.push(out[e.repeat] as Envelope<MailDeliveryStatusPayload>);
        continue;
      }
      const r = requests[e.request] as (typeof requests)[number];
      const payload: MailDeliveryStatusPayload = {
        request_id: r.requestId,
        user_id: r.userId,
        status: e.status,
        attempt: e.attempt,
        error_class: e.status === 'deferred' || e.status === 'failed' ? 'timeout' : null,
        ...(e.smtp ? { smtp_message_id: `<${randomUUID()}@test>` } : {}),
      };
      out.push(
        buildEnvelope({ type: EVENT_TYPE.mailDeliveryStatus, aggregateType: 'user', aggregateId: r.userId, payload }),
      );
    }
    return out;
  }

  const stored = async (events: Envelope<MailDeliveryStatusPayload>[]) => {
    const ids = [...new Set(events.map((e) => e.payload.request_id))];
    const { rows } = await db.pool.query(
      `SELECT request_id, status, attempt, error_class, smtp_message_id, last_event_id FROM mail_delivery_status WHERE request_id = ANY($1::uuid[])`,
      [ids],
    );
    const byId = new Map(rows.map((r) => [r.request_id, r]));
    // Positional: request i of one run is compared with request i of the other.
    return ids.map((id) => {
      const row = byId.get(id);
      if (!row) return null;
      const eventIndex = events.findIndex((e) => e.id === row.last_event_id);
      const smtpIndex = events.findIndex(
        (e) => e.payload.smtp_message_id !== undefined && e.payload.smtp_message_id === row.smtp_message_id,
      );
      return { status: row.status, attempt: row.attempt, error_class: row.error_class, eventIndex, smtpIndex };
    });
  };

  test(
    'when 40 generated batches are stored at once and one event at a time, stored states and outcomes are the ' +
      'same',
    async () => {
      const recordMany = record();
      for (let seed = 1; seed <= 40; seed++) {
        const s = scenario(seed);
        const batchEvents = await materialize(s);
        const batchOutcomes = await recordMany(batchEvents);
        const oneByOne = await materialize(s);
        const oneOutcomes = [];
        for (const e of oneByOne) oneOutcomes.push(...(await recordMany([e])));
        expect({ seed, outcomes: batchOutcomes, state: await stored(batchEvents) }).toEqual({
          seed,
          outcomes: oneOutcomes,
          state: await stored(oneByOne),
        });
      }
    },
  );

  test('when a batch is redelivered whole, every event is a duplicate and nothing changes', async () => {
    const recordMany = record();
    const events = await materialize(scenario(99));
    await recordMany(events);
    const before = await stored(events);
    expect(await recordMany(events)).toEqual(events.map(() => 'duplicate'));
    expect(await stored(events)).toEqual(before);
  });
});
