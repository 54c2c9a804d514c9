import { Registry } from 'prom-client';
import { buildEnvelope, type MailRequestedPayload } from '@shared/events';
import { createLogger } from '@shared/logger';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { insertRequestsOfIdleUsers } from '../src/data-access/inbox-repository';
import { createRecordMailRequests, type IncomingMessage } from '../src/domain/record-mail-requests';
import { createMailerMetrics } from '../src/metrics';
import { newInboxRequest } from './support/inbox-rows';
import { mailRequest } from './support/mailer-harness';
import { sealTestCode } from '../../../test/support/payload-key';

/*
 * The intake as a whole (createRecordMailRequests): its one-statement common case and the transaction
 * it falls back to must leave the inbox and mailer_outbox exactly as the transaction alone would.
 */

let offset = 0;
/** A mail.requested message as accounts publishes it (its code sealed with the test key). */
const message = (plain: MailRequestedPayload, eventId?: string): IncomingMessage => {
  const payload = { ...plain, vars: { ...plain.vars, code: sealTestCode(plain.vars.code, plain.request_id) } };
  return {
    topic: 'mail.requests',
    partition: 0,
    offset: String(offset++),
    value: Buffer.from(
      JSON.stringify(
        buildEnvelope({
          type: 'mail.requested',
          aggregateType: 'user',
          aggregateId: payload.user_id,
          payload,
          ...(eventId ? { id: eventId } : {}),
        }),
      ),
    ),
  };
};

describe('mailer intake: one statement for the common case, the transaction for the rest', () => {
  let db: TestDatabase;
  /** The intake on the test's database; `overrides` replace its callbacks (claiming at intake is off by default). */
  const recorder = (overrides: Partial<Parameters<typeof createRecordMailRequests>[0]> = {}) =>
    createRecordMailRequests({
      pool: db.pool,
      metrics: createMailerMetrics(new Registry(), async () => 0),
      logger: createLogger({ service: 'test', level: 'silent' }),
      clock: () => new Date(),
      onRecorded: () => undefined,
      ...overrides,
    });
  let record: (messages: IncomingMessage[]) => Promise<void>;

  beforeAll(async () => {
    db = await createTestDatabase('mailer');
    record = recorder();
  });
  afterAll(async () => {
    await db.drop();
  });
  beforeEach(async () => {
    await db.pool.query('DELETE FROM mailer_requests; DELETE FROM mailer_outbox');
  });

  const states = async () =>
    Object.fromEntries(
      (
        await db.pool.query<{ request_id: string; state: string }>('SELECT request_id, state FROM mailer_requests')
      ).rows.map((r) => [r.request_id, r.state]),
    );
  const statuses = async () =>
    (await db.pool.query<{ value: string }>('SELECT value FROM mailer_outbox ORDER BY id')).rows.map(
      (r) => (JSON.parse(r.value) as { payload: { request_id: string; status: string } }).payload,
    );

  test('insertRequestsOfIdleUsers skips a user with a pending request and a request_id already stored', async () => {
    const pending = newInboxRequest();
    const stored = newInboxRequest();
    expect((await insertRequestsOfIdleUsers(db.pool, [pending, stored])).inserted).toEqual(
      new Set([pending.requestId, stored.requestId]),
    );
    await db.pool.query(`UPDATE mailer_requests SET state = 'sent' WHERE request_id = $1`, [stored.requestId]);

    const idle = newInboxRequest();
    const newerOfPending = newInboxRequest({ userId: pending.userId });
    const newerOfSent = newInboxRequest({ userId: stored.userId });
    const { inserted } = await insertRequestsOfIdleUsers(db.pool, [idle, newerOfPending, { ...stored }, newerOfSent]);
    expect(inserted).toEqual(new Set([idle.requestId, newerOfSent.requestId]));
    expect(await states()).not.toHaveProperty(newerOfPending.requestId);
  });

  test(
    'insertRequestsOfIdleUsers with a claim: the first rows inserted already claimed (sending, attempt 1, ' +
      'leased), the rest pending',
    async () => {
      const [a, b, c] = [newInboxRequest(), newInboxRequest(), newInboxRequest()];
      const { inserted, claimed } = await insertRequestsOfIdleUsers(db.pool, [a, b, c], { count: 2, leaseMs: 60_000 });
      expect(inserted).toEqual(new Set([a.requestId, b.requestId, c.requestId]));
      expect(claimed.map((r) => r.requestId)).toEqual([a.requestId, b.requestId]);
      expect(claimed[0]).toEqual(
        expect.objectContaining({
          userId: a.userId,
          vars: a.vars,
          attempts: 1,
          generation: 0,
          possibleDuplicate: false,
        }),
      );
      const { rows } = await db.pool.query<{ request_id: string; state: string; attempts: number; leased: boolean }>(
        `SELECT request_id, state, attempts, claim_id IS NOT NULL AND lease_until > now() + interval '50 seconds'
                AS leased FROM mailer_requests ORDER BY seq`,
      );
      expect(rows).toEqual([
        { request_id: a.requestId, state: 'sending', attempts: 1, leased: true },
        { request_id: b.requestId, state: 'sending', attempts: 1, leased: true },
        { request_id: c.requestId, state: 'pending', attempts: 0, leased: false },
      ]);
      // The claim ids returned are the rows' own: outcomes are recorded against them.
      const ids = await db.pool.query<{ claim_id: string }>(
        `SELECT claim_id FROM mailer_requests WHERE state = 'sending' ORDER BY seq`,
      );
      expect(ids.rows.map((r) => r.claim_id)).toEqual(claimed.map((r) => r.claimId));
    },
  );

  test('the intake hands the rows it claimed to the dispatcher, as many as it has room for', async () => {
    const adopted: string[] = [];
    const recorded: { pending: number; outboxEvents: number }[] = [];
    const withRoom = recorder({
      onRecorded: (r) => recorded.push(r),
      claimAtIntake: {
        room: () => 1,
        leaseMs: 60_000,
        adopt: (claims) => adopted.push(...claims.map((c) => c.requestId)),
      },
    });
    const batch = [mailRequest(), mailRequest()];
    await withRoom(batch.map((p) => message(p)));
    expect(adopted).toEqual([batch[0]?.request_id]);
    // One row left for the dispatcher to claim, no status to publish.
    expect(recorded).toEqual([{ pending: 1, outboxEvents: 0 }]);
    const poison: IncomingMessage = { topic: 'mail.requests', partition: 0, offset: String(offset++), value: null };
    await withRoom([poison]);
    expect(recorded[1]).toEqual({ pending: 0, outboxEvents: 1 });
    expect(await states()).toEqual({
      [batch[0]?.request_id ?? '']: 'sending',
      [batch[1]?.request_id ?? '']: 'pending',
    });
  });

  test('a batch of new users: every request pending, no status', async () => {
    const batch = [mailRequest(), mailRequest(), mailRequest()];
    await record(batch.map((p) => message(p)));
    expect(await states()).toEqual(Object.fromEntries(batch.map((p) => [p.request_id, 'pending'])));
    expect(await statuses()).toEqual([]);
  });

  test(
    'a batch mixing a new user and a user whose older request is pending: both recorded, the older one ' +
      'superseded with its failed status',
    async () => {
      const older = mailRequest();
      await record([message(older)]);
      const fresh = mailRequest();
      const newer = mailRequest({ user_id: older.user_id });
      await record([message(fresh), message(newer)]);

      expect(await states()).toEqual({
        [older.request_id]: 'superseded',
        [fresh.request_id]: 'pending',
        [newer.request_id]: 'pending',
      });
      expect(await statuses()).toEqual([
        expect.objectContaining({ request_id: older.request_id, status: 'failed', error_class: null }),
      ]);
    },
  );

  test('two requests of one user in a batch: the first is superseded', async () => {
    const first = mailRequest();
    const second = mailRequest({ user_id: first.user_id });
    await record([message(first), message(second)]);
    expect(await states()).toEqual({ [first.request_id]: 'superseded', [second.request_id]: 'pending' });
    expect((await statuses()).map((s) => s.request_id)).toEqual([first.request_id]);
  });

  test('a redelivered batch changes nothing', async () => {
    const batch = [mailRequest(), mailRequest()];
    const messages = batch.map((p) => message(p));
    await record(messages);
    const before = await states();
    await record(messages);
    expect(await states()).toEqual(before);
    expect(await statuses()).toEqual([]);
  });

  test('a batch with poison: the valid requests recorded, the poison parked as a DLQ record, together', async () => {
    const valid = mailRequest();
    const poison: IncomingMessage = { topic: 'mail.requests', partition: 0, offset: String(offset++), value: null };
    await record([message(valid), poison]);
    expect(await states()).toEqual({ [valid.request_id]: 'pending' });
    const { rows } = await db.pool.query<{ topic: string }>('SELECT topic FROM mailer_outbox');
    expect(rows.map((r) => r.topic)).toEqual(['mail.requests.dlq']);
  });
});
