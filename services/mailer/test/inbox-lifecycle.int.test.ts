import { randomUUID } from 'node:crypto';
import type { Pool, PoolClient } from '@shared/db';
import { createLogger } from '@shared/logger';
import { Writable } from 'node:stream';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { parseMailerConfig } from '../src/config';
import { recordRequests, supersedeOlderUnsent, type NewRequest } from '../src/data-access/inbox-repository';
import { newInboxRequest as newRequest } from './support/inbox-rows';
import { claimDueRequests, deleteExpiredRequests, type ClaimedRequest } from '../src/data-access/requests-repository';
import { markDeferred, markFailed, markSentBatch } from '../src/data-access/attempt-outcomes';
import { createRetentionJob } from '../src/entry-points/retention-job';

async function recordWithFlag(pool: Pool, requests: NewRequest[]) {
  const client = await pool.connect();
  try {
    return await recordRequests(client, requests);
  } finally {
    client.release();
  }
}

async function record(pool: Pool, requests: NewRequest[]) {
  const { recorded, replayed } = await recordWithFlag(pool, requests);
  return { recorded, replayed };
}

async function inTx<T>(pool: Pool, fn: (client: PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}

async function rowOf(pool: Pool, requestId: string) {
  const { rows } = await pool.query<{
    state: string;
    attempts: number;
    event_id: string;
    vars: Record<string, unknown>;
    original: string;
    possible_duplicate: boolean;
  }>(
    `SELECT state, attempts, event_id, vars, original, possible_duplicate FROM mailer_requests WHERE request_id = $1`,
    [requestId],
  );
  return rows[0];
}

/** Claims exactly the given request (the test database holds only what the test put in). */
async function claim(pool: Pool, requestId: string) {
  const claims = await claimDueRequests(pool, { limit: 100, leaseMs: 60_000 });
  const mine = claims.find((c) => c.requestId === requestId);
  if (!mine) throw new Error(`${requestId} was not claimed`);
  return mine;
}

/** SMTP accepted the claimed mail: marked `sent` with no status event. */
const sentMark = (c: ClaimedRequest) => ({
  requestId: c.requestId,
  claimId: c.claimId,
  smtpMessageId: '<id@test>',
  possibleDuplicate: false,
  status: null,
});

describe('mailer inbox: replays, redaction and retention', () => {
  let db: TestDatabase;

  beforeAll(async () => {
    db = await createTestDatabase('mailer');
  });
  afterAll(async () => {
    await db.drop();
  });
  beforeEach(async () => {
    await db.pool.query('DELETE FROM mailer_requests');
  });

  describe('a mail.requested for a known request_id', () => {
    it(
      'when the request failed and the envelope id is new (a DLQ replay), resets it to pending with fresh ' +
        'attempts',
      async () => {
        const req = newRequest();
        await record(db.pool, [req]);
        const c = await claim(db.pool, req.requestId);
        await inTx(db.pool, (client) => markFailed(client, c, 'rejected'));

        const replay = { ...req, eventId: randomUUID(), vars: { code: '654321' }, original: '{"replayed":true}' };
        const result = await record(db.pool, [replay]);
        expect(result).toEqual({ recorded: [req.requestId], replayed: [req.requestId] });
        const row = await rowOf(db.pool, req.requestId);
        expect(row).toMatchObject({
          state: 'pending',
          attempts: 0,
          event_id: replay.eventId,
          vars: { code: '654321' },
          original: '{"replayed":true}',
          possible_duplicate: false,
        });
        expect((await claimDueRequests(db.pool, { limit: 10, leaseMs: 60_000 })).map((x) => x.requestId)).toEqual([
          req.requestId,
        ]);
      },
    );

    it('when the request failed and the envelope id is the same (a plain redelivery), ignores it', async () => {
      const req = newRequest();
      await record(db.pool, [req]);
      const c = await claim(db.pool, req.requestId);
      await inTx(db.pool, (client) => markFailed(client, c, 'rejected'));

      expect(await record(db.pool, [req])).toEqual({ recorded: [], replayed: [] });
      expect((await rowOf(db.pool, req.requestId))?.state).toBe('failed');
    });

    it('when the request was sent or superseded, never resets it, whatever the envelope id', async () => {
      const sent = newRequest();
      await record(db.pool, [sent]);
      const c = await claim(db.pool, sent.requestId);
      expect(await markSentBatch(db.pool, [sentMark(c)])).toEqual(new Set([c.claimId]));
      const older = newRequest();
      const newer = newRequest({ userId: older.userId });
      await record(db.pool, [older]);
      const { recorded } = await record(db.pool, [newer]);
      await inTx(db.pool, (client) => supersedeOlderUnsent(client, recorded));

      expect(
        await record(db.pool, [
          { ...sent, eventId: randomUUID() },
          { ...older, eventId: randomUUID() },
        ]),
      ).toEqual({ recorded: [], replayed: [] });
      expect((await rowOf(db.pool, sent.requestId))?.state).toBe('sent');
      expect((await rowOf(db.pool, older.requestId))?.state).toBe('superseded');
    });

    it(
      'when a newer request of the same user exists, a replay of the older failed one is ignored (its code was ' +
        'replaced)',
      async () => {
        const older = newRequest();
        await record(db.pool, [older]);
        const c = await claim(db.pool, older.requestId);
        await inTx(db.pool, (client) => markFailed(client, c, 'rejected'));
        await record(db.pool, [newRequest({ userId: older.userId })]);

        expect((await record(db.pool, [{ ...older, eventId: randomUUID() }])).replayed).toEqual([]);
        expect((await rowOf(db.pool, older.requestId))?.state).toBe('failed');
      },
    );

    it('when the same request is twice in one batch, records it once', async () => {
      const req = newRequest();
      expect(await record(db.pool, [req, req])).toEqual({ recorded: [req.requestId], replayed: [] });
    });
  });

  describe('whether a recorded batch replaces older requests (the intake skips the supersede statement if not)', () => {
    it('a first request of each user: no', async () => {
      expect((await recordWithFlag(db.pool, [newRequest(), newRequest()])).replacesOlder).toBe(false);
    });

    it('a newer request of a user whose older one is pending: yes, and the older one is superseded', async () => {
      const older = newRequest();
      await record(db.pool, [older]);
      const newer = await recordWithFlag(db.pool, [newRequest(), newRequest({ userId: older.userId })]);
      expect(newer.replacesOlder).toBe(true);
      expect((await inTx(db.pool, (c) => supersedeOlderUnsent(c, newer.recorded))).map((r) => r.requestId)).toEqual([
        older.requestId,
      ]);
    });

    it('two requests of one user in the same batch: yes, and the first one is superseded', async () => {
      const first = newRequest();
      const second = newRequest({ userId: first.userId });
      const both = await recordWithFlag(db.pool, [first, second]);
      expect(both.replacesOlder).toBe(true);
      expect((await inTx(db.pool, (c) => supersedeOlderUnsent(c, both.recorded))).map((r) => r.requestId)).toEqual([
        first.requestId,
      ]);
    });

    it("when the older request is already sent or in SMTP's hands (sending): no", async () => {
      const sent = newRequest();
      await record(db.pool, [sent]);
      expect(await markSentBatch(db.pool, [sentMark(await claim(db.pool, sent.requestId))])).toHaveProperty('size', 1);
      const sending = newRequest();
      await record(db.pool, [sending]);
      await claim(db.pool, sending.requestId);

      const later = [newRequest({ userId: sent.userId }), newRequest({ userId: sending.userId })];
      expect((await recordWithFlag(db.pool, later)).replacesOlder).toBe(false);
    });
  });

  describe('redaction: the confirmation code leaves the row on every terminal transition', () => {
    const expectRedacted = async (requestId: string, state: string) => {
      const row = await rowOf(db.pool, requestId);
      expect(row?.state).toBe(state);
      expect(row?.vars).not.toHaveProperty('code');
      expect(row?.vars).toMatchObject({ first_name: 'Ada' });
      expect(row?.original).toBe('');
    };

    it('when sent', async () => {
      const req = newRequest();
      await record(db.pool, [req]);
      const c = await claim(db.pool, req.requestId);
      expect(c.vars.code).toBe('123456');
      expect(await markSentBatch(db.pool, [sentMark(c)])).toEqual(new Set([c.claimId]));
      await expectRedacted(req.requestId, 'sent');
    });

    it('when failed', async () => {
      const req = newRequest();
      await record(db.pool, [req]);
      const c = await claim(db.pool, req.requestId);
      await inTx(db.pool, (client) => markFailed(client, c, 'rejected'));
      await expectRedacted(req.requestId, 'failed');
    });

    it('when superseded by a newer request while pending, and while sending', async () => {
      const older = newRequest();
      await record(db.pool, [older]);
      const { recorded } = await record(db.pool, [newRequest({ userId: older.userId })]);
      await inTx(db.pool, (client) => supersedeOlderUnsent(client, recorded));
      await expectRedacted(older.requestId, 'superseded');

      const sending = newRequest();
      await record(db.pool, [sending]);
      const c = await claim(db.pool, sending.requestId);
      await record(db.pool, [newRequest({ userId: sending.userId })]);
      const outcome = await inTx(db.pool, (client) =>
        markDeferred(client, c, { errorClass: 'timeout', delayMs: 10, consumeAttempt: true }),
      );
      expect(outcome?.state).toBe('superseded');
      await expectRedacted(sending.requestId, 'superseded');
    });

    it('when only deferred, keeps the code (it is needed for the retry)', async () => {
      const req = newRequest();
      await record(db.pool, [req]);
      const c = await claim(db.pool, req.requestId);
      await inTx(db.pool, (client) =>
        markDeferred(client, c, { errorClass: 'timeout', delayMs: 10, consumeAttempt: true }),
      );
      const row = await rowOf(db.pool, req.requestId);
      expect(row).toMatchObject({ state: 'pending', vars: { code: '123456' }, original: req.original });
    });
  });

  describe('retention', () => {
    it('MAIL_RETENTION_DAYS defaults to 7', () => {
      expect(parseMailerConfig({}).MAIL_RETENTION_DAYS).toBe(7);
      expect(parseMailerConfig({ MAIL_RETENTION_DAYS: '30' }).MAIL_RETENTION_DAYS).toBe(30);
    });

    it('deletes terminal rows older than the retention in batches, and keeps unfinished and recent ones', async () => {
      const states = ['sent', 'failed', 'superseded', 'pending', 'sending'] as const;
      const old: Record<string, string[]> = {};
      const recent: string[] = [];
      for (const state of states) {
        const reqs = [newRequest(), newRequest(), newRequest()];
        await record(db.pool, [...reqs]);
        const ids = reqs.map((r) => r.requestId);
        await db.pool.query(
          `UPDATE mailer_requests SET state = $2, updated_at = now() - interval '8 days' WHERE request_id = ANY($1::uuid[])`,
          [ids, state],
        );
        old[state] = ids;
        const fresh = newRequest();
        await record(db.pool, [fresh]);
        await db.pool.query(
          `UPDATE mailer_requests SET state = $2, updated_at = now() - interval '6 days' WHERE request_id = $1`,
          [fresh.requestId, state],
        );
        recent.push(fresh.requestId);
      }

      expect(await deleteExpiredRequests(db.pool, { olderThanDays: 7, batchSize: 2 })).toBe(9);
      const { rows } = await db.pool.query<{ request_id: string }>(`SELECT request_id FROM mailer_requests`);
      const left = rows.map((r) => r.request_id).sort();
      expect(left).toEqual([...recent, ...(old.pending ?? []), ...(old.sending ?? [])].sort());
    });

    it('the periodic job runs at start and then every interval', async () => {
      const req = newRequest();
      await record(db.pool, [req]);
      await db.pool.query(`UPDATE mailer_requests SET state = 'sent', updated_at = now() - interval '2 days'`);
      const logger = createLogger({
        service: 'mailer',
        level: 'warn',
        destination: new Writable({ write: (_c, _e, done) => done() }),
      });
      const job = createRetentionJob({ pool: db.pool, retentionDays: 1, logger, everyMs: 100 });
      await job.start();
      try {
        await waitFor(async () => !(await rowOf(db.pool, req.requestId)), {
          timeoutMs: 5_000,
          message: 'deleted at start',
        });
        const later = newRequest();
        await record(db.pool, [later]);
        await db.pool.query(
          `UPDATE mailer_requests SET state = 'failed', updated_at = now() - interval '2 days' WHERE request_id = $1`,
          [later.requestId],
        );
        await waitFor(async () => !(await rowOf(db.pool, later.requestId)), {
          timeoutMs: 5_000,
          message: 'deleted by a later run',
        });
      } finally {
        await job.stop();
      }
    });
  });
});
