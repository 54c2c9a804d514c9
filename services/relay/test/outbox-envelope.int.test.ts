import { randomUUID } from 'node:crypto';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { claimOutboxBatch } from '../src/data-access/outbox-repository';
import { toKafkaMessage } from '../src/domain/outbox-message';

/*
 * PostgreSQL writes the Kafka value (the contract's envelope) in the claim. It must be the bytes
 * JSON.stringify gives for the same envelope — field order, escapes and all — with the payload as
 * jsonb's stored text, which is what the relay sent when it built the envelope itself.
 */
describe('the envelope the claim writes', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  const awkward = [
    'user-1',
    'quote " backslash \\ slash /',
    'controls \n\t\r\b\f \u0001 \u001f end',
    'unicode é 日本 🙂 \u2028 \u007f',
    '</script><b>',
  ];

  test('is byte for byte JSON.stringify of the envelope, for awkward strings and timestamps too', async () => {
    const rows = awkward.map((text, i) => ({
      eventId: randomUUID(),
      topic: 'accounts.user-events',
      key: `${text} #${i}`,
      type: `user.${text}`,
      aggregateType: `agg ${text}`,
      occurredAt: ['2026-11-26 11:22:33.456789+00', '1999-12-31 23:59:59.999+05:30', '2026-01-01 00:00:00+00'][i % 3],
      payload: { text, n: i, nested: { list: [1, 'two', null], flag: true } },
      headers: i % 2 === 0 ? {} : { traceparent: `tp-${i}`, attempt: i },
    }));
    // A later row of the first key: the claim takes it as a follower (the statement's other branch).
    const first = rows[0];
    if (!first) throw new Error('no rows');
    rows.push({ ...first, eventId: randomUUID(), payload: { ...first.payload, n: 99 } });
    await db.pool.query(
      `INSERT INTO outbox (event_id, topic, key, type, version, aggregate_type, occurred_at, payload, headers)
       SELECT e, t, k, ty, 1 + n::int % 2, a, o, p, h
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::jsonb[], $8::jsonb[])
            WITH ORDINALITY AS r(e, t, k, ty, a, o, p, h, n)
       ORDER BY n`,
      [
        rows.map((r) => r.eventId),
        rows.map((r) => r.topic),
        rows.map((r) => r.key),
        rows.map((r) => r.type),
        rows.map((r) => r.aggregateType),
        rows.map((r) => r.occurredAt),
        rows.map((r) => JSON.stringify(r.payload)),
        rows.map((r) => JSON.stringify(r.headers)),
      ],
    );
    const client = await db.pool.connect();
    try {
      await client.query('BEGIN');
      const claimed = await claimOutboxBatch(client, 100);
      const stored = await client.query<{
        event_id: string;
        version: number;
        occurred_at: Date;
        payload: string;
      }>('SELECT event_id, version, occurred_at, payload::text AS payload FROM outbox ORDER BY id');
      await client.query('ROLLBACK');

      expect(claimed).toHaveLength(rows.length);
      expect(claimed.map((r) => r.eventId)).toEqual(rows.map((r) => r.eventId));
      claimed.forEach((row, i) => {
        const source = rows[i];
        const db = stored.rows[i];
        if (!source || !db) throw new Error('row missing');
        const head = {
          id: source.eventId,
          type: source.type,
          version: db.version,
          occurred_at: db.occurred_at.toISOString(),
          aggregate_type: source.aggregateType,
          aggregate_id: source.key,
        };
        expect(row.value).toBe(`${JSON.stringify(head).slice(0, -1)},"payload":${db.payload}}`);
        expect(JSON.parse(row.value)).toEqual({ ...head, payload: source.payload });
        const message = toKafkaMessage(row);
        expect(message.key).toBe(source.key);
        expect(message.headers).toEqual({
          ...Object.fromEntries(Object.entries(source.headers).map(([k, v]) => [k, String(v)])),
          id: source.eventId,
          type: source.type,
        });
      });
    } finally {
      client.release();
    }
  });
});
