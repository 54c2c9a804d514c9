import { withTransaction } from '@shared/db';
import type { Envelope, MailDeliveryStatusPayload } from '@shared/events';
import {
  insertDeliveryStatusIfAbsent,
  lockDeliveryStatus,
  markEventProcessed,
  updateDeliveryStatus,
  type DeliveryStatusUpdate,
} from '../data-access/delivery-status-repository';
import type { DomainDeps } from './deps';
import { supersedes } from './delivery-status-order';

export type RecordOutcome = 'applied' | 'stale' | 'duplicate';

/**
 * Applies one delivery-status event: once per event id (processed_events, same transaction), and
 * only when it moves the stored status forward by the ordering rule in delivery-status-order.ts.
 */
export function createRecordDeliveryStatus(deps: Pick<DomainDeps, 'pool' | 'metrics' | 'clock'> & { consumerName: string }) {
  return async function recordDeliveryStatus(event: Envelope<MailDeliveryStatusPayload>): Promise<RecordOutcome> {
    const p = event.payload;
    const update: DeliveryStatusUpdate = {
      requestId: p.request_id,
      userId: p.user_id,
      status: p.status,
      attempt: p.attempt,
      errorClass: p.error_class,
      smtpMessageId: p.smtp_message_id ?? null,
      eventId: event.id,
      occurredAt: event.occurred_at,
      at: deps.clock.now(),
    };
    const outcome = await withTransaction(deps.pool, async (client): Promise<RecordOutcome> => {
      if (!(await markEventProcessed(client, deps.consumerName, event.id))) return 'duplicate';
      if (await insertDeliveryStatusIfAbsent(client, update)) return 'applied';
      const current = await lockDeliveryStatus(client, p.request_id);
      if (!current || !supersedes(p, current)) return 'stale';
      await updateDeliveryStatus(client, update);
      return 'applied';
    });
    if (outcome !== 'duplicate') deps.metrics.deliveryStatuses.inc({ status: p.status, error_class: p.error_class ?? 'none' });
    return outcome;
  };
}
