import { withTransaction } from '@shared/db';
import type { Envelope, MailDeliveryStatusPayload } from '@shared/events';
import {
  insertDeliveryStatusesIfAbsent,
  openDeliveryStatuses,
  readOpened,
  updateDeliveryStatuses,
  type DeliveryStatusUpdate,
  type OpenedRow,
} from '../data-access/delivery-status-repository';
import type { DomainDeps } from './deps';
import { supersedes, type StatusVersion } from './delivery-status-order';

export type RecordOutcome = 'applied' | 'stale' | 'duplicate';

/** A concurrent writer inserted a status this transaction saw absent: retry, and the ordering rule then applies. */
export class ConcurrentStatusInsertError extends Error {
  constructor(requestIds: string[]) {
    super(`delivery status inserted concurrently for ${requestIds.length} request(s); retrying`);
  }
}

/**
 * Applies delivery-status events in ONE transaction, in the order given (a Kafka batch: one
 * partition's messages in offset order): each once per event id (processed_events), and a request's
 * stored status moves only when an event supersedes it by the ordering rule in
 * delivery-status-order.ts, applied event by event exactly as if they came one at a time. Set-based:
 * three round trips per batch whatever its size (BEGIN with the dedupe and the lock, the update, COMMIT).
 */
export function createRecordDeliveryStatuses(
  deps: Pick<DomainDeps, 'pool' | 'metrics' | 'clock'> &
    Partial<Pick<DomainDeps, 'mailOutage'>> & { consumerName: string },
) {
  return async function recordDeliveryStatuses(
    events: Envelope<MailDeliveryStatusPayload>[],
  ): Promise<RecordOutcome[]> {
    if (events.length === 0) return [];
    const at = deps.clock.now();
    const open = openDeliveryStatuses(
      deps.consumerName,
      // Both sorted: two transactions insert and lock in the same order, so they wait, never deadlock.
      [...new Set(events.map((e) => e.id))].sort(),
      [...new Set(events.map((e) => e.payload.request_id))].sort(),
    );
    const outcomes = await withTransaction<RecordOutcome[], OpenedRow>(
      deps.pool,
      async (client, tx) => {
        const { fresh, stored } = readOpened(tx.first);
        const current = new Map<string, StatusVersion>(stored);
        const inserts = new Map<string, DeliveryStatusUpdate>();
        const updates = new Map<string, DeliveryStatusUpdate>();
        const result = events.map((event): RecordOutcome => {
          // The second copy of an event id within the batch is a duplicate like any redelivery.
          if (!fresh.delete(event.id)) return 'duplicate';
          const p = event.payload;
          const before = current.get(p.request_id);
          if (before && !supersedes(p, before)) return 'stale';
          current.set(p.request_id, { status: p.status, attempt: p.attempt, generation: p.generation ?? 0 });
          const pending = stored.has(p.request_id) ? updates : inserts;
          const update = toUpdate(event, at);
          // As one UPDATE after another would: an SMTP message id once recorded is kept.
          const earlier = pending.get(p.request_id);
          pending.set(p.request_id, {
            ...update,
            smtpMessageId: update.smtpMessageId ?? earlier?.smtpMessageId ?? null,
            provider: update.provider ?? earlier?.provider ?? null,
          });
          return 'applied';
        });
        const inserted = await insertDeliveryStatusesIfAbsent(client, [...inserts.values()]);
        const lost = [...inserts.keys()].filter((id) => !inserted.has(id));
        if (lost.length > 0) throw new ConcurrentStatusInsertError(lost);
        await updateDeliveryStatuses(client, [...updates.values()]);
        return result;
      },
      { beginWith: open },
    );
    outcomes.forEach((outcome, i) => {
      const p = (events[i] as Envelope<MailDeliveryStatusPayload>).payload;
      if (outcome !== 'duplicate')
        deps.metrics.deliveryStatuses.inc({ status: p.status, error_class: p.error_class ?? 'none' });
      // Every status, stale ones included: the outage is about the mailer now, not about one request.
      deps.mailOutage?.observe(p, (events[i] as Envelope<MailDeliveryStatusPayload>).occurred_at);
    });
    return outcomes;
  };
}

function toUpdate(event: Envelope<MailDeliveryStatusPayload>, at: Date): DeliveryStatusUpdate {
  const p = event.payload;
  return {
    requestId: p.request_id,
    userId: p.user_id,
    status: p.status,
    attempt: p.attempt,
    generation: p.generation ?? 0,
    errorClass: p.error_class,
    smtpMessageId: p.smtp_message_id ?? null,
    provider: p.provider ?? null,
    nextAttemptAt: p.status === 'deferred' ? (p.next_attempt_at ?? null) : null,
    eventId: event.id,
    occurredAt: event.occurred_at,
    at,
  };
}

/** One event (a batch of one). */
export function createRecordDeliveryStatus(
  deps: Pick<DomainDeps, 'pool' | 'metrics' | 'clock'> &
    Partial<Pick<DomainDeps, 'mailOutage'>> & { consumerName: string },
) {
  const recordMany = createRecordDeliveryStatuses(deps);
  return async (event: Envelope<MailDeliveryStatusPayload>): Promise<RecordOutcome> =>
    (await recordMany([event]))[0] as RecordOutcome;
}
