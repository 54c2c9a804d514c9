import type { Message } from 'kafkajs';
import { buildEnvelope, envelopeHeaders, type MailRequestedPayload } from '@shared/events';

/** A mail request as the relay publishes it on `mail.requests`: its envelope, keyed by the user, with its headers. */
export function mailRequestMessage(payload: MailRequestedPayload): Message {
  const envelope = buildEnvelope({
    type: 'mail.requested',
    aggregateType: 'user',
    aggregateId: payload.user_id,
    payload,
  });
  return { key: payload.user_id, value: JSON.stringify(envelope), headers: envelopeHeaders(envelope) };
}
