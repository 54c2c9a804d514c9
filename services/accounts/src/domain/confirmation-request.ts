import { randomUUID } from 'node:crypto';
import { buildEnvelope, EVENT_TYPE } from '@shared/events';
import { TOPIC } from '@shared/topics';
import type { Queryable } from '../data-access/queryable';
import { insertConfirmation } from '../data-access/confirmations-repository';
import { insertQueuedDeliveryStatus } from '../data-access/delivery-status-repository';
import type { OutboxEvent } from '../data-access/outbox-repository';
import { sealPayloadValue, type PayloadKeyring } from '@shared/payload-crypto';
import { generateConfirmationCode, hashConfirmationCode } from './confirmation-code';

export type Recipient = { id: string; email: string; first_name: string | null; last_name: string | null };

export type NewConfirmationRequest = {
  requestId: string;
  codeHash: string;
  expiresAt: Date;
  mailRequested: OutboxEvent;
};
export type ConfirmationOptions = { now: Date; codeTtlS: number; payloadKeys: PayloadKeyring };

/**
 * A new confirmation request, not yet stored: a fresh code (only its hash is stored) and the
 * `mail.requested` event carrying the code sealed under MAIL_PAYLOAD_KEY (AES-256-GCM, bound to the
 * request id) for the mailer to open; in clear it is never stored, logged or returned.
 */
export function newConfirmationRequest(
  user: Recipient,
  opts: ConfirmationOptions,
  requestId: string = randomUUID(),
): NewConfirmationRequest {
  const { now, codeTtlS } = opts;
  const code = generateConfirmationCode();
  const expiresAt = new Date(now.getTime() + codeTtlS * 1000);
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
      vars: {
        code: sealPayloadValue(opts.payloadKeys, code, requestId),
        first_name: user.first_name,
        last_name: user.last_name,
        expires_at: expiresAt.toISOString(),
      },
      requested_at: now.toISOString(),
    },
  });
  return {
    requestId,
    codeHash: hashConfirmationCode(code),
    expiresAt,
    mailRequested: { topic: TOPIC.mailRequests, envelope },
  };
}

/**
 * Inside the caller's transaction: store a new hashed code and a `queued` delivery status, and return
 * the `mail.requested` event for the caller to put in the outbox with its other events. (A resend
 * supersedes older codes first.)
 */
export async function createConfirmationRequest(
  db: Queryable,
  user: Recipient,
  opts: ConfirmationOptions,
  requestId: string = randomUUID(),
): Promise<{ requestId: string; mailRequested: OutboxEvent }> {
  const { now } = opts;
  const request = newConfirmationRequest(user, opts, requestId);
  await insertConfirmation(db, {
    requestId,
    userId: user.id,
    codeHash: request.codeHash,
    expiresAt: request.expiresAt,
    createdAt: now,
  });
  await insertQueuedDeliveryStatus(db, { requestId, userId: user.id, at: now });
  return { requestId, mailRequested: request.mailRequested };
}
