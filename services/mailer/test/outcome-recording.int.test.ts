import { Writable } from 'node:stream';
import pg from 'pg';
import { Registry } from 'prom-client';
import type { PoolClient } from '@shared/db';
import { createLogger } from '@shared/logger';
import { createKeyring } from '@shared/payload-crypto';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import { waitFor } from '../../../test/support/wait-for';
import { parseMailerConfig } from '../src/config';
import { recordRequests } from '../src/data-access/inbox-repository';
import { newInboxRequest } from './support/inbox-rows';
import { claimDueRequests, type ClaimedRequest } from '../src/data-access/requests-repository';
import type { DeliverContext } from '../src/domain/deliver-context';
import type { ProviderFailover } from '../src/domain/provider-failover';
import { createSentRecorder, type Sent } from '../src/domain/record-sent';
import { createMailerMetrics } from '../src/metrics';
import { mailRequest, startMailerHarness, type MailerHarness } from './support/mailer-harness';

/*
 * Accepted mails are recorded in groups (one statement per flush: rows `sent` + their statuses) while
 * SMTP goes on; the dispatcher claims ahead and gives back what it did not send when stopped.
 */

const countByState = async (pool: pg.Pool): Promise<Record<string, number>> => {
  const { rows } = await pool.query<{ state: string; n: string }>(
    `SELECT state, count(*) AS n FROM mailer_requests GROUP BY state`,
  );
  return Object.fromEntries(rows.map((r) => [r.state, Number(r.n)]));
};

describe('mailer: SMTP and the recording of outcomes run side by side (real PostgreSQL and SMTP)', () => {
  let h: MailerHarness;

  beforeAll(async () => {
    // A 10 s SMTP timeout: a 100 s lease, so nothing held back by the test is taken over meanwhile.
    h = await startMailerHarness({ env: { SMTP_POOL_SIZE: '2', SMTP_TIMEOUT_MS: '10000' } });
    await h.startInProcess();
  });
  afterAll(async () => {
    await h.stop();
  });

  it(
    'when PostgreSQL holds the recording back, then SMTP keeps accepting mail beyond the pool size, and ' +
      'afterwards every request has exactly one sent row, one sent status and one mail',
    async () => {
      const warmUp = mailRequest();
      await h.produce([warmUp]);
      await h.waitForStatus(warmUp.request_id, 'sent');

      // The table lock makes every recording wait (the statement that marks rows sent also inserts their statuses).
      const locker: PoolClient = await h.db.pool.connect();
      const requests = Array.from({ length: 60 }, () => mailRequest());
      try {
        await locker.query('BEGIN');
        await locker.query('LOCK TABLE mailer_outbox IN EXCLUSIVE MODE');
        await h.produce(requests);
        // Two connections: before the change a mail held its connection until its outcome committed,
        // so no more than two could be accepted while the recording waits.
        await waitFor(() => h.smtp.messages.length >= 1 + 10, {
          message: `mails accepted while recording waits (have ${h.smtp.messages.length})`,
        });
        expect((await countByState(h.db.pool)).sent).toBe(1);
      } finally {
        await locker.query('COMMIT');
        locker.release();
      }

      await waitFor(() => requests.every((r) => h.statusesOf(r.request_id).some((s) => s.status === 'sent')), {
        timeoutMs: 30_000,
        message: 'a sent status for every request',
      });
      for (const r of requests) {
        expect(h.smtp.messages.filter((m) => m.to.includes(r.to))).toHaveLength(1);
        expect(h.statusesOf(r.request_id)).toEqual([expect.objectContaining({ status: 'sent', attempt: 1 })]);
        expect(await h.row(r.request_id)).toMatchObject({ state: 'sent', attempts: 1, possible_duplicate: false });
      }
      expect(await h.metric('mail_sent_total', { result: 'sent' })).toBe(61);
      expect(await h.metric('mail_duplicate_sends_total')).toBe(0);
      expect(h.logs.filter((l) => l.includes('could not record'))).toEqual([]);
    },
  );

  it(
    'when stopped gracefully in the middle of a burst, then no row is left `sending`: each accepted mail ' +
      'is recorded sent, and rows claimed but not sent are pending again as the attempt they were',
    async () => {
      const sentBefore = (await countByState(h.db.pool)).sent ?? 0;
      const mailsBefore = h.smtp.messages.length;
      const requests = Array.from({ length: 300 }, () => mailRequest());
      // Every SMTP reply 5 ms late: the burst takes seconds, so the stop below always lands in its middle
      // (without it, a quick enough mailer had sent all 300 before the stop and left nothing to give back).
      await h.smtp.setFault({ mode: 'slow', delayMs: 5 });
      await h.produce(requests);
      await waitFor(() => h.smtp.messages.length >= mailsBefore + 20, { message: 'the burst under way' });

      try {
        await h.mailer?.stop();
      } finally {
        await h.smtp.setFault({ mode: 'healthy' });
      }

      const states = await countByState(h.db.pool);
      expect(states.sending ?? 0).toBe(0);
      // Every mail SMTP accepted is recorded (and only those): stop waits for the outcomes.
      expect(states.sent).toBe(sentBefore + (h.smtp.messages.length - mailsBefore));
      const { rows: pending } = await h.db.pool.query<ClaimedRequestRow>(
        `SELECT request_id, attempts, possible_duplicate, claim_id, lease_until FROM mailer_requests
          WHERE state = 'pending'`,
      );
      expect(pending.length).toBeGreaterThan(0);
      for (const row of pending) {
        expect(row).toMatchObject({ attempts: 0, possible_duplicate: false, claim_id: null, lease_until: null });
      }
      const given = h.logs
        .map((l) => JSON.parse(l) as { msg?: string; reason?: string; released?: number })
        .filter((l) => l.msg === 'claimed requests given back unsent' && l.reason === 'stopping');
      // The dispatcher had rows claimed ahead of its connections; they went back at once, not by lease.
      expect(given.reduce((n, l) => n + (l.released ?? 0), 0)).toBeGreaterThan(0);

      // Claimed again (by any instance), a row given back is attempt 1 and not a possible duplicate.
      const again = await claimDueRequests(h.db.pool, { limit: 1_000, leaseMs: 60_000 });
      expect(again.length).toBe(pending.length);
      expect(again.every((c) => c.attempts === 1 && !c.possibleDuplicate)).toBe(true);
    },
  );
});

type ClaimedRequestRow = {
  request_id: string;
  attempts: number;
  possible_duplicate: boolean;
  claim_id: string | null;
  lease_until: Date | null;
};

describe('the group-commit recorder of accepted mails (real PostgreSQL)', () => {
  let db: TestDatabase;
  const lines: string[] = [];
  const logger = createLogger({
    service: 'mailer',
    level: 'debug',
    destination: new Writable({
      write(chunk: Buffer, _e, done) {
        lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    }),
  });

  beforeAll(async () => {
    db = await createTestDatabase('mailer');
  });
  afterAll(async () => {
    await db.drop();
  });
  beforeEach(() => {
    lines.length = 0;
  });

  const context = (pool: pg.Pool, onOutboxWritten: () => void = () => undefined) => {
    const registry = new Registry();
    const ctx: DeliverContext = {
      pool,
      failover: {} as Pick<ProviderFailover, 'send'>,
      config: parseMailerConfig({}),
      metrics: createMailerMetrics(registry, async () => 0),
      logger,
      log: logger,
      clock: () => new Date(),
      random: Math.random,
      onOutboxWritten,
      payloadKeys: createKeyring(Buffer.alloc(32, 1)),
    };
    const duplicates = async () =>
      (await registry.getSingleMetric('mail_duplicate_sends_total')?.get())?.values[0]?.value;
    return { ctx, duplicates };
  };

  const claimFresh = async (n: number): Promise<ClaimedRequest[]> => {
    const client = await db.pool.connect();
    try {
      await recordRequests(
        client,
        Array.from({ length: n }, () => newInboxRequest({ vars: { code: 'sealed' }, original: '{}' })),
      );
    } finally {
      client.release();
    }
    return claimDueRequests(db.pool, { limit: n, leaseMs: 60_000 });
  };
  const accepted = (claim: ClaimedRequest): Sent => ({
    ok: true,
    provider: 'primary',
    result: { messageId: `<${claim.requestId}@test>`, response: '250 OK' },
    seconds: 0.001,
    tries: [],
    possibleDuplicate: false,
  });
  const stateOf = async (requestId: string) =>
    (await db.pool.query<{ state: string }>(`SELECT state FROM mailer_requests WHERE request_id = $1`, [requestId]))
      .rows[0]?.state;

  it(
    'when a flush fails (PostgreSQL unreachable), then each of its outcomes is logged, its row stays ' +
      '`sending` for the lease, and nothing is published',
    async () => {
      const claims = await claimFresh(3);
      const down = new pg.Pool({ connectionString: 'postgres://postgres@127.0.0.1:1/nowhere', max: 1 });
      down.on('error', () => undefined);
      let kicks = 0;
      const { ctx } = context(down, () => void (kicks += 1));
      const recorder = createSentRecorder(ctx);
      try {
        await Promise.all(claims.map((c) => recorder.record(c, accepted(c))));
      } finally {
        await down.end();
      }

      for (const c of claims) {
        expect(await stateOf(c.requestId)).toBe('sending');
        const logged = lines.filter((l) => l.includes(c.requestId) && l.includes('could not record the outcome'));
        expect(logged).toHaveLength(1);
        expect(JSON.parse(logged[0] as string)).toMatchObject({ level: 'error' });
      }
      expect(kicks).toBe(0);
      expect(Number((await db.pool.query(`SELECT count(*) AS n FROM mailer_outbox`)).rows[0].n)).toBe(0);
    },
  );

  it(
    'when one claim of a group was lost to another instance, then the others are sent with one status ' +
      'each, and the lost one gets no status and counts as a possible duplicate',
    async () => {
      await db.pool.query(`DELETE FROM mailer_outbox`);
      const claims = await claimFresh(4);
      const lost = claims[0] as ClaimedRequest;
      // Another instance took the row over (its lease expired): a new claim id.
      await db.pool.query(`UPDATE mailer_requests SET claim_id = gen_random_uuid() WHERE request_id = $1`, [
        lost.requestId,
      ]);
      let kicks = 0;
      const { ctx, duplicates } = context(db.pool, () => void (kicks += 1));
      const recorder = createSentRecorder(ctx);
      await Promise.all(claims.map((c) => recorder.record(c, accepted(c))));

      expect(await stateOf(lost.requestId)).toBe('sending');
      for (const c of claims.slice(1)) expect(await stateOf(c.requestId)).toBe('sent');
      const { rows } = await db.pool.query<{ value: string }>(`SELECT value FROM mailer_outbox ORDER BY id`);
      const statuses = rows.map((r) => (JSON.parse(r.value) as { payload: { request_id: string } }).payload);
      expect(statuses.map((s) => s.request_id).sort()).toEqual(
        claims
          .slice(1)
          .map((c) => c.requestId)
          .sort(),
      );
      expect(statuses.every((s) => (s as unknown as { status: string }).status === 'sent')).toBe(true);
      expect(await duplicates()).toBe(1);
      expect(lines.filter((l) => l.includes(lost.requestId) && l.includes('claim was lost'))).toHaveLength(1);
      expect(kicks).toBeGreaterThan(0);
    },
  );
});
