import { randomUUID } from 'node:crypto';
import { buildEnvelope, EVENT_TYPE } from '@shared/events';
import { TOPIC } from '@shared/topics';
import type { Queryable } from '../data-access/queryable';
import { insertConfirmation, supersedePendingConfirmations } from '../data-access/confirmations-repository';
import { insertQueuedDeliveryStatus } from '../data-access/delivery-status-repository';
import { insertOutboxEvent } from '../data-access/outbox-repository';
import { generateConfirmationCode, hashConfirmationCode } from './confirmation-code';

export type Recipient = { id: string; email: string; first_name: string | null; last_name: string | null };

/**
 * Inside the caller's transaction: supersede older codes, store a new hashed code, a `queued`
 * delivery status and the `mail.requested` outbox row. The plain code exists only in the outbox
 * payload the mailer needs; it is never logged or returned.
 */
export async function createConfirmationRequest(db: Queryable, user: Recipient, now: Date, codeTtlS: number): Promise<{ requestId: string }> {
  const requestId = randomUUID();
  const code = generateConfirmationCode();
  const expiresAt = new Date(now.getTime() + codeTtlS * 1000);
  await supersedePendingConfirmations(db, user.id);
  await insertConfirmation(db, { requestId, userId: user.id, codeHash: hashConfirmationCode(code), expiresAt, createdAt: now });
  await insertQueuedDeliveryStatus(db, { requestId, userId: user.id, at: now });
  const envelope = buildEnvelope({
    type: EVENT_TYPE.mailRequested,
    aggregateType: 'user',
    aggregateId: user.id,
    occurredAt: now,
    payload: {
      request_id: requestId,
      user_id: user.id,
      to: user.email,
      template: 'email_confirmation',
      vars: { code, first_name: user.first_name, last_name: user.last_name, expires_at: expiresAt.toISOString() },
      requested_at: now.toISOString(),
    },
  });
  await insertOutboxEvent(db, TOPIC.mailRequests, envelope);
  return { requestId };
}
