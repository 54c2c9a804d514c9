import { TOPIC } from '@shared/topics';
import { buildEnvelope, envelopeHeaders, type ErrorClass, type MailDeliveryStatusPayload } from '@shared/events';
import type { OutboxEvent } from '../data-access/mailer-outbox';
import type { DlqReason } from '../metrics';

/**
 * A `mail.delivery_status` event. Built once, when the outcome is recorded: a republish after a crash
 * carries the same envelope id, so consumers dedupe it.
 */
export function deliveryStatusEvent(status: MailDeliveryStatusPayload, occurredAt: Date): OutboxEvent {
  // Generation 0 (the original delivery) is left out: the event stays exactly what it was before replays had one.
  const { generation, ...rest } = status;
  const payload: MailDeliveryStatusPayload = generation ? { ...rest, generation } : rest;
  const envelope = buildEnvelope({
    type: 'mail.delivery_status',
    aggregateType: 'user',
    aggregateId: payload.user_id,
    payload,
    occurredAt,
  });
  return {
    topic: TOPIC.mailDeliveryStatus,
    key: payload.user_id,
    value: JSON.stringify(envelope),
    headers: envelopeHeaders(envelope),
  };
}

/** Largest original value copied into a DLQ record; bigger poison messages are truncated there. */
export const DLQ_ORIGINAL_MAX_BYTES = 64 * 1024;

export type DlqRecordInput = {
  reason: DlqReason;
  /** What went wrong, for operators (parse error or the last SMTP reply). */
  error: string;
  errorClass: ErrorClass | null;
  original: Buffer | string | null;
  requestId?: string;
  userId?: string;
  attempts?: number;
  source?: { topic: string; partition: number; offset: string };
};

/** A record for `mail.requests.dlq`: the original request exactly as it arrived + the last error. */
export function dlqRecordEvent(input: DlqRecordInput, at: Date): OutboxEvent {
  const original =
    input.original === null
      ? null
      : typeof input.original === 'string'
        ? Buffer.from(input.original, 'utf8')
        : input.original;
  const truncated = original !== null && original.length > DLQ_ORIGINAL_MAX_BYTES;
  const kept = original === null ? null : original.subarray(0, DLQ_ORIGINAL_MAX_BYTES);
  const asText = kept?.toString('utf8');
  // Binary (or cut mid-character) values go base64 so the record stays valid JSON, byte for byte.
  const isText =
    kept !== null && asText !== undefined && Buffer.from(asText, 'utf8').equals(kept) && !asText.includes('\u0000');
  const record = {
    reason: input.reason,
    error: input.error.slice(0, 2_000),
    error_class: input.errorClass,
    request_id: input.requestId ?? null,
    user_id: input.userId ?? null,
    attempts: input.attempts ?? null,
    source: input.source ?? null,
    original_value: isText ? asText : null,
    original_value_base64: kept !== null && !isText ? kept.toString('base64') : null,
    original_truncated: truncated,
    dead_lettered_at: at.toISOString(),
  };
  return {
    topic: TOPIC.mailRequestsDlq,
    key: input.userId ?? null,
    value: JSON.stringify(record),
    headers: { reason: input.reason, ...(input.requestId ? { request_id: input.requestId } : {}) },
  };
}
