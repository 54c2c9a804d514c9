import { withTransaction, type Pool } from '@shared/db';
import { InvalidEventError, parseEvent } from '@shared/events';
import type { Logger } from '@shared/logger';
import { insertOutboxEvents } from '../data-access/mailer-outbox';
import {
  insertRequestsOfIdleUsers,
  recordRequests,
  supersedeOlderUnsent,
  type NewRequest,
} from '../data-access/inbox-repository';
import type { ClaimedRequest } from '../data-access/requests-repository';
import type { MailerMetrics } from '../metrics';
import type { OutboxEvent } from '../data-access/mailer-outbox';
import { deliveryStatusEvent, dlqRecordEvent } from './delivery-events';

/** A mail request is a few hundred bytes; anything far larger is poison, not a request. */
export const MAX_REQUEST_BYTES = 64 * 1024;

const withoutNul = (value: string): string => value.replaceAll('\u0000', ' ');

export type IncomingMessage = { topic: string; partition: number; offset: string; value: Buffer | null };

type Poison = { message: IncomingMessage; error: string };
/**
 * Hands mail straight to the dispatcher's free SMTP connections: `room()` says how many it takes now
 * (0 unless a breaker admits mail freely), `adopt` takes the rows the intake inserted already claimed.
 */
export type ClaimAtIntake = { room: () => number; leaseMs: number; adopt: (claims: ClaimedRequest[]) => void };

type Deps = {
  pool: Pool;
  metrics: MailerMetrics;
  logger: Logger;
  clock: () => Date;
  /** After each batch: how many rows it left `pending` (not claimed at intake), and events it put in mailer_outbox. */
  onRecorded: (recorded: { pending: number; outboxEvents: number }) => void;
  claimAtIntake?: ClaimAtIntake;
};

/** One mail.requested message as an inbox row; throws InvalidEventError for poison. */
function toNewRequest(message: IncomingMessage): NewRequest {
  if (message.value !== null && message.value.length > MAX_REQUEST_BYTES) {
    throw new InvalidEventError(`message value is ${message.value.length} bytes, more than ${MAX_REQUEST_BYTES}`);
  }
  const event = parseEvent(message.value, 'mail.requested');
  const p = event.payload;
  return {
    requestId: p.request_id,
    eventId: event.id,
    userId: p.user_id,
    // PostgreSQL text and jsonb cannot hold NUL: a NUL becomes a space (an address with one then
    // fails validation as a permanent rejection instead of stalling the partition here).
    recipient: withoutNul(p.to),
    template: p.template,
    vars: {
      code: p.vars.code,
      ...(p.vars.first_name != null ? { first_name: withoutNul(p.vars.first_name) } : {}),
      ...(p.vars.last_name != null ? { last_name: withoutNul(p.vars.last_name) } : {}),
      ...(p.vars.expires_at !== undefined ? { expires_at: withoutNul(p.vars.expires_at) } : {}),
    },
    requestedAt: p.requested_at && !Number.isNaN(Date.parse(p.requested_at)) ? p.requested_at : null,
    original: (message.value as Buffer).toString('utf8'),
  };
}

/** Splits a batch into valid requests and poison messages. */
function sortBatch(messages: IncomingMessage[]): { requests: NewRequest[]; poison: Poison[] } {
  const requests: NewRequest[] = [];
  const poison: Poison[] = [];
  for (const message of messages) {
    try {
      requests.push(toNewRequest(message));
    } catch (err) {
      if (!(err instanceof InvalidEventError)) throw err;
      poison.push({ message, error: err.message });
    }
  }
  return { requests, poison };
}

function poisonDlqEvent({ message, error }: Poison, now: Date): OutboxEvent {
  return dlqRecordEvent(
    {
      reason: 'invalid_request',
      error,
      errorClass: null,
      original: message.value,
      source: { topic: message.topic, partition: message.partition, offset: message.offset },
    },
    now,
  );
}

/** No user twice in the batch: none of its requests supersedes another of it. */
const onePerUser = (requests: NewRequest[]): boolean => new Set(requests.map((r) => r.userId)).size === requests.length;

/**
 * Inbox rows, superseded statuses and DLQ records of one batch. The common case — no poison, one
 * request per user, users with nothing pending — is one statement and its own commit, which also
 * claims as many of its rows as the dispatcher has free connections for, and hands them over at once
 * (before anything else can fail: a claim never waits for its lease). Whatever that did not insert
 * (and any poison) is then written in one transaction, as the rules below require. A failure after
 * the first commit fails the batch: its redelivery finds those rows stored (duplicates).
 */
async function writeBatch(deps: Deps, requests: NewRequest[], poison: Poison[], now: Date) {
  let fast = new Set<string>();
  let claimed = 0;
  if (poison.length === 0 && onePerUser(requests)) {
    const claim = deps.claimAtIntake;
    const written = await insertRequestsOfIdleUsers(deps.pool, requests, {
      count: claim?.room() ?? 0,
      leaseMs: claim?.leaseMs ?? 0,
    });
    if (written.claimed.length > 0) claim?.adopt(written.claimed);
    claimed = written.claimed.length;
    fast = written.inserted;
  }
  const rest = fast.size === 0 ? requests : requests.filter((r) => !fast.has(r.requestId));
  if (rest.length === 0 && poison.length === 0) return { inserted: [...fast], replayed: [], superseded: [], claimed };
  const written = await writeCarefully(deps.pool, rest, poison, now);
  return { ...written, inserted: [...fast, ...written.inserted], claimed };
}

/** Inbox rows, superseded statuses and DLQ records, in one transaction. */
async function writeCarefully(pool: Pool, requests: NewRequest[], poison: Poison[], now: Date) {
  const dlqEvents = poison.map((p) => poisonDlqEvent(p, now));
  return withTransaction(pool, async (client) => {
    const { recorded, replayed: replayedIds, replacesOlder } = await recordRequests(client, requests);
    const replaced = replacesOlder ? await supersedeOlderUnsent(client, recorded) : [];
    const statuses: OutboxEvent[] = replaced.map((r) =>
      deliveryStatusEvent(
        {
          request_id: r.requestId,
          user_id: r.userId,
          status: 'failed',
          attempt: r.attempts,
          error_class: null,
          generation: r.generation,
        },
        now,
      ),
    );
    await insertOutboxEvents(client, [...statuses, ...dlqEvents]);
    return { inserted: recorded, replayed: replayedIds, superseded: replaced };
  });
}

type Written = Awaited<ReturnType<typeof writeBatch>>;

function reportBatch(deps: Deps, log: Logger, requests: NewRequest[], poison: Poison[], written: Written): void {
  const { inserted, replayed, superseded } = written;
  for (const { message, error } of poison) {
    deps.metrics.countInvalidRequest();
    deps.metrics.countDlqRecord('invalid_request');
    log.warn(
      { topic: message.topic, partition: message.partition, offset: message.offset, error },
      'invalid mail request parked on the DLQ',
    );
  }
  if (superseded.length > 0) {
    deps.metrics.countSuperseded(superseded.length);
    for (const r of superseded)
      log.info({ request_id: r.requestId, user_id: r.userId }, 'superseded by a newer request of the same user');
  }
  for (const id of replayed) log.info({ request_id: id }, 'failed request replayed from the DLQ: pending again');
  const duplicates = requests.length - inserted.length;
  if (inserted.length > 0 || duplicates > 0)
    log.debug({ recorded: inserted.length, duplicates }, 'mail requests recorded');
  if (duplicates > 0) log.info({ duplicates }, 'redelivered mail requests ignored');
}

/**
 * The consumer's whole job: make a batch of mail.requests durable. Valid requests go into the inbox
 * (a redelivered request is ignored; a DLQ replay of a failed one makes it pending again), a newer
 * request supersedes the same user's older unsent ones (they get a `failed` status with error_class
 * null: not an error, a newer code replaced them), and poison messages become DLQ records. A request
 * and what it replaces are written in one transaction (requests that replace nothing may be written
 * before it, in one statement: writeBatch); everything is durable when this resolves, so the caller may
 * commit the offsets then. If it throws, the batch is redelivered and what was written counts as
 * redelivered.
 */
export function createRecordMailRequests(deps: Deps) {
  const log = deps.logger.child({ component: 'record-requests' });

  return async function recordMailRequests(messages: IncomingMessage[]): Promise<void> {
    const { requests, poison } = sortBatch(messages);
    const written = await writeBatch(deps, requests, poison, deps.clock());
    reportBatch(deps, log, requests, poison, written);
    deps.onRecorded({
      pending: written.inserted.length - written.claimed,
      outboxEvents: written.superseded.length + poison.length,
    });
  };
}
