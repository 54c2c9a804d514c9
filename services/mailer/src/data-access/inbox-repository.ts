import type { Pool, PoolClient } from '@shared/db';
import type { MailRequestedPayload } from '@shared/events';
import {
  CLAIMED_COLUMNS,
  REDACT,
  USER_UNSENT_INDEX,
  toClaimedRequest,
  type ClaimedRequest,
  type ClaimedRow,
} from './requests-repository';

/* The inbox's writes on intake: the requests of a mail.requests batch, and the older ones they replace. */

export type NewRequest = {
  requestId: string;
  eventId: string;
  userId: string;
  recipient: string;
  template: string;
  vars: MailRequestedPayload['vars'];
  requestedAt: string | null;
  original: string;
};

export type RecordedRequests = {
  /** Rows inserted or reset to pending: both are now waiting to be sent. */
  recorded: string[];
  /** Of those, the `failed` rows a replay (same request_id, new envelope id) reset to pending. */
  replayed: string[];
  /**
   * Whether `supersedeOlderUnsent` has anything to do for these rows: a user of the batch has an older
   * `pending` request, or two requests in it. Almost never: the intake then skips that statement.
   */
  replacesOlder: boolean;
};

/** The parameters $1..$8 of the inbox inserts. */
const requestColumns = (requests: NewRequest[]) => [
  requests.map((r) => r.requestId),
  requests.map((r) => r.eventId),
  requests.map((r) => r.userId),
  requests.map((r) => r.recipient),
  requests.map((r) => r.template),
  requests.map((r) => JSON.stringify(r.vars)),
  requests.map((r) => r.requestedAt),
  requests.map((r) => r.original),
];

/**
 * Records requests not seen before. A redelivered request (same request_id and envelope id) is
 * ignored. A replay from the DLQ (scripts/replay-dlq.ts: same request_id, a NEW envelope id) of a
 * request that ended `failed` resets that row to `pending` with fresh attempts, unless the user has a
 * newer request (its code replaced this one). `sent` and `superseded` rows are never reset.
 */
export async function recordRequests(client: PoolClient, requests: NewRequest[]): Promise<RecordedRequests> {
  // One statement must not touch a row twice (ON CONFLICT DO UPDATE refuses): a request redelivered
  // within the batch is kept once.
  const seen = new Set<string>();
  const unique = requests.filter((r) => !seen.has(r.requestId) && seen.add(r.requestId));
  if (unique.length === 0) return { recorded: [], replayed: [], replacesOlder: false };
  const { rows } = await client.query<{
    request_id: string;
    user_id: string;
    inserted: boolean;
    older_pending: boolean;
  }>({
    name: 'mailer-record-requests',
    text: `INSERT INTO mailer_requests AS m
            (request_id, event_id, user_id, recipient, template, vars, requested_at, original)
     SELECT r.request_id, r.event_id, r.user_id, r.recipient, r.template, r.vars, r.requested_at, r.original
     FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::text[])
          WITH ORDINALITY AS r(request_id, event_id, user_id, recipient, template, vars, requested_at, original, ord)
     ORDER BY r.ord
     ON CONFLICT (request_id) DO UPDATE
        SET event_id = EXCLUDED.event_id, recipient = EXCLUDED.recipient, template = EXCLUDED.template,
            vars = EXCLUDED.vars, requested_at = EXCLUDED.requested_at, original = EXCLUDED.original,
            state = 'pending', attempts = 0, generation = m.generation + 1, next_attempt_at = now(),
            lease_until = NULL, claim_id = NULL, possible_duplicate = false, last_error_class = NULL,
            smtp_message_id = NULL, sent_at = NULL, updated_at = now()
      WHERE m.state = 'failed' AND m.event_id <> EXCLUDED.event_id
        AND NOT EXISTS (SELECT 1 FROM mailer_requests n WHERE n.user_id = m.user_id AND n.seq > m.seq)
     RETURNING m.request_id, m.user_id, (m.xmax = 0) AS inserted,
               EXISTS (SELECT 1 FROM mailer_requests o
                        WHERE o.user_id = m.user_id AND o.seq < m.seq AND o.state = 'pending'
                          AND ${USER_UNSENT_INDEX('o')}) AS older_pending`,
    values: requestColumns(unique),
  });
  // The EXISTS reads the statement's snapshot: rows this statement inserted are not in it, hence the
  // second test (two requests of one user in the batch).
  const users = new Set(rows.map((r) => r.user_id));
  return {
    recorded: rows.map((r) => r.request_id),
    replayed: rows.filter((r) => !r.inserted).map((r) => r.request_id),
    replacesOlder: users.size < rows.length || rows.some((r) => r.older_pending),
  };
}

/** Claim at intake: how many of the inserted rows to mark `sending` at once, and their lease. */
export type IntakeClaim = { count: number; leaseMs: number };

/**
 * The intake's common case in ONE statement, outside any transaction: inserts the requests of users
 * with no `pending` request (nothing for them to supersede), skipping any request_id already stored.
 * Returns the request ids it inserted; the caller records the others (a user with a pending request,
 * a redelivery, a DLQ replay) the careful way, `recordRequests` and `supersedeOlderUnsent` in one
 * transaction. Only for a batch with at most one request per user: rows of one statement cannot see
 * each other.
 *
 * With `claim`, the first `claim.count` requests of the batch are inserted already claimed — `sending`,
 * attempt 1, under a lease, exactly as claimDueRequests would mark them — and returned as claims for
 * the dispatcher's free connections: no claim statement for a mail that finds a connection free. The
 * others are inserted `pending` as usual.
 */
export async function insertRequestsOfIdleUsers(
  db: Pool | PoolClient,
  requests: NewRequest[],
  claim: IntakeClaim = { count: 0, leaseMs: 0 },
): Promise<{ inserted: Set<string>; claimed: ClaimedRequest[] }> {
  if (requests.length === 0) return { inserted: new Set(), claimed: [] };
  const claimed = 'r.ord <= $9';
  const { rows } = await db.query<ClaimedRow & { state: string }>({
    name: 'mailer-insert-requests-of-idle-users',
    text: `INSERT INTO mailer_requests
            (request_id, event_id, user_id, recipient, template, vars, requested_at, original,
             state, attempts, lease_until, claim_id)
     SELECT r.request_id, r.event_id, r.user_id, r.recipient, r.template, r.vars, r.requested_at, r.original,
            CASE WHEN ${claimed} THEN 'sending' ELSE 'pending' END,
            CASE WHEN ${claimed} THEN 1 ELSE 0 END,
            CASE WHEN ${claimed} THEN now() + make_interval(secs => $10::double precision / 1000) END,
            CASE WHEN ${claimed} THEN gen_random_uuid() END
     FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::jsonb[], $7::timestamptz[], $8::text[])
          WITH ORDINALITY AS r(request_id, event_id, user_id, recipient, template, vars, requested_at, original, ord)
     WHERE NOT EXISTS (SELECT 1 FROM mailer_requests o
                        WHERE o.user_id = r.user_id AND o.state = 'pending' AND ${USER_UNSENT_INDEX('o')})
     ORDER BY r.ord
     ON CONFLICT (request_id) DO NOTHING
     RETURNING state, ${CLAIMED_COLUMNS()}`,
    values: [...requestColumns(requests), claim.count, claim.leaseMs],
  });
  return {
    inserted: new Set(rows.map((r) => r.request_id)),
    claimed: rows.filter((r) => r.state === 'sending').map(toClaimedRequest),
  };
}

export type SupersededRequest = { requestId: string; userId: string; attempts: number; generation: number };

/**
 * A newer request of a user replaces that user's older requests still waiting to be sent. Rows in
 * `sending` are in SMTP's hands and cannot be recalled; if such a send then fails, `markDeferred`
 * supersedes it instead of retrying.
 */
export async function supersedeOlderUnsent(client: PoolClient, newRequestIds: string[]): Promise<SupersededRequest[]> {
  if (newRequestIds.length === 0) return [];
  const { rows } = await client.query<{ request_id: string; user_id: string; attempts: number; generation: number }>({
    name: 'mailer-supersede-older-unsent',
    text: `UPDATE mailer_requests r
        SET state = 'superseded', next_attempt_at = now(), updated_at = now(), ${REDACT}
       FROM (SELECT user_id, max(seq) AS newest FROM mailer_requests
              WHERE request_id = ANY($1::uuid[]) GROUP BY user_id) n
      WHERE r.user_id = n.user_id AND r.seq < n.newest AND r.state = 'pending' AND ${USER_UNSENT_INDEX('r')}
     RETURNING r.request_id, r.user_id, r.attempts, r.generation`,
    values: [newRequestIds],
  });
  return rows.map((r) => ({
    requestId: r.request_id,
    userId: r.user_id,
    attempts: r.attempts,
    generation: r.generation,
  }));
}
