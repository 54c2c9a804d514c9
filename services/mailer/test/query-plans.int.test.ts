import type pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../../../test/support/infra';
import {
  insertRequestsOfIdleUsers,
  recordRequests,
  supersedeOlderUnsent,
  type NewRequest,
} from '../src/data-access/inbox-repository';
import { markDeferred, markFailed, markSentBatch, releaseClaims } from '../src/data-access/attempt-outcomes';
import { claimDueRequests, countRetryPending, deferDueRequests } from '../src/data-access/requests-repository';
import { newInboxRequest } from './support/inbox-rows';

/*
 * The inbox's statements on a planner that believes its partial indexes empty: the statistics were
 * taken while nothing was pending (as after a quiet night, or on a server without autovacuum, never),
 * then thousands of mails went through, each leaving a dead entry in the partial indexes until the
 * next VACUUM. A statement that probes by request id must still use the primary key, and the intake's
 * per-user probe the user index: scanning a whole partial index costs more with every mail sent.
 */

type Recorded = { name: string; text: string; values: unknown[] };
type Plan = { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; Plans?: Plan[] };

/** The indexes of mailer_requests a plan reads (a sequential scan counts as 'seq scan'). */
function inboxAccess(plan: Plan, found = new Set<string>()): Set<string> {
  if (plan['Relation Name'] === 'mailer_requests' && plan['Node Type'] !== 'ModifyTable') {
    found.add(plan['Index Name'] ?? plan['Node Type'].toLowerCase());
  }
  for (const child of plan.Plans ?? []) inboxAccess(child, found);
  return found;
}

describe('mailer inbox statements keep their indexes when the statistics are stale', () => {
  let db: TestDatabase;
  let client: pg.PoolClient;
  const recorded: Recorded[] = [];
  /** The client, recording each statement it runs under the name given. */
  let as: (name: string) => pg.PoolClient;

  beforeAll(async () => {
    db = await createTestDatabase('mailer');
    client = await db.pool.connect();
    const seed = `INSERT INTO mailer_requests (request_id, event_id, user_id, recipient, template, vars, original, state)
      SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'u' || g || '@example.test',
             'email_confirmation', '{}'::jsonb, '', $1
        FROM generate_series(1, $2) g`;
    await client.query(seed, ['sent', 1_000]);
    // Statistics taken now: nothing pending, so both partial indexes are empty to the planner.
    await client.query('VACUUM ANALYZE mailer_requests');
    // Then mails went through without a VACUUM: each left a dead entry in both partial indexes.
    await client.query(seed, ['pending', 3_000]);
    await client.query(`UPDATE mailer_requests SET state = 'sent' WHERE state = 'pending'`);
    as = (name) =>
      new Proxy(client, {
        get(target, prop, receiver) {
          if (prop !== 'query') return Reflect.get(target, prop, receiver) as unknown;
          return (config: string | pg.QueryConfig, values?: unknown[]) => {
            const text = typeof config === 'string' ? config : config.text;
            recorded.push({ name, text, values: (typeof config === 'string' ? values : config.values) ?? [] });
            return target.query(config as string, values);
          };
        },
      });
  });
  afterAll(async () => {
    client?.release();
    await db.drop();
  });

  /** One request inserted and claimed at intake, as the dispatcher holds it. */
  async function claimedRequest(overrides: Partial<NewRequest> = {}) {
    const { claimed } = await insertRequestsOfIdleUsers(as('intake'), [newInboxRequest(overrides)], {
      count: 1,
      leaseMs: 60_000,
    });
    const [claim] = claimed;
    if (!claim) throw new Error('not claimed at intake');
    return claim;
  }

  test('each statement reads mailer_requests through the index meant for it', async () => {
    const sent = await claimedRequest();
    await markSentBatch(as('mark sent'), [
      {
        requestId: sent.requestId,
        claimId: sent.claimId,
        smtpMessageId: '<m@x>',
        possibleDuplicate: false,
        status: null,
      },
    ]);
    const released = await claimedRequest();
    await releaseClaims(as('release') as unknown as pg.Pool, [released]);
    const deferred = await claimedRequest();
    await markDeferred(as('defer'), deferred, { errorClass: 'timeout', delayMs: 1_000, consumeAttempt: true });
    const failed = await claimedRequest();
    await markFailed(as('fail'), failed, 'rejected');
    const older = newInboxRequest();
    await recordRequests(as('record'), [older, newInboxRequest({ userId: older.userId })]);
    await supersedeOlderUnsent(as('supersede'), [older.requestId]);
    await claimDueRequests(as('claim') as unknown as pg.Pool, { limit: 10, leaseMs: 60_000 });
    await deferDueRequests(as('defer due'), { until: new Date(Date.now() + 60_000), limit: 10 });
    await countRetryPending(as('retry gauge') as unknown as pg.Pool);

    const access: Record<string, string[]> = {};
    for (const { name, text, values } of recorded) {
      const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: Plan }] }>(`EXPLAIN (FORMAT JSON) ${text}`, values);
      const plan = rows[0]?.['QUERY PLAN'][0].Plan as Plan;
      access[name] = [...new Set([...(access[name] ?? []), ...inboxAccess(plan)])].sort();
    }
    const due = 'mailer_requests_due_idx';
    const userUnsent = 'mailer_requests_user_unsent_idx';
    const pkey = 'mailer_requests_pkey';
    expect(access['intake']).toEqual([userUnsent]);
    expect(access['mark sent']).toEqual([pkey]);
    expect(access['release']).toEqual([pkey]);
    expect(access['fail']).toEqual([pkey]);
    expect(access['defer']).toContain(pkey);
    expect(access['defer']).not.toContain(due);
    expect(access['record']).toContain(userUnsent);
    expect(access['record']).not.toContain(due);
    expect(access['supersede']).not.toContain(due);
    expect(access['claim']).toContain(due);
    expect(access['defer due']).toContain(due);
    expect(access['retry gauge']).toEqual([due]);
  });
});
