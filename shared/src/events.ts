import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { SEALED_PATTERN } from './payload-crypto';

/**
 * The event envelope and every event payload, typed once and validated at runtime where consumed.
 * Kafka key = aggregate_id (the user id) so one user's events stay ordered; headers carry id and type.
 */

/**
 * An ISO-8601 timestamp with offset that PostgreSQL can store too: zod alone accepts year 0000, and
 * Date.parse accepts "12345"; either would make the consumer's insert fail on every redelivery and
 * stall its partition, so such a value is invalid (poison) here.
 */
export const isoTimestamp = z
  .string()
  .datetime({ offset: true })
  .refine((v) => {
    const year = new Date(v).getUTCFullYear();
    return year >= 1970 && year <= 9999;
  }, 'must be a timestamp between 1970 and 9999');

export const envelopeSchema = z.object({
  id: z.string().uuid(),
  type: z.string().min(1),
  version: z.number().int().positive(),
  occurred_at: isoTimestamp,
  aggregate_type: z.string().min(1),
  aggregate_id: z.string().min(1),
  payload: z.unknown(),
});
export type Envelope<P = unknown> = Omit<z.infer<typeof envelopeSchema>, 'payload'> & { payload: P };

export const userRegisteredPayload = z.object({
  user_id: z.string().uuid(),
  email: z.string(),
  first_name: z.string().nullable(),
  last_name: z.string().nullable(),
  referral_code: z.string(),
  referred_by: z.string().uuid().nullable(),
  registered_at: isoTimestamp,
});
export type UserRegisteredPayload = z.infer<typeof userRegisteredPayload>;

export const MAIL_TEMPLATES = ['email_confirmation'] as const;

export const mailRequestedPayload = z.object({
  request_id: z.string().uuid(),
  user_id: z.string().uuid(),
  to: z.string().min(3).max(320),
  template: z.enum(MAIL_TEMPLATES),
  vars: z.object({
    /** The 6-digit code sealed under MAIL_PAYLOAD_KEY (payload-crypto.ts); never in clear. */
    code: z.string().regex(SEALED_PATTERN, 'must be a sealed code (v1.<key id>.<iv>.<ciphertext>)'),
    first_name: z.string().max(200).nullable().optional(),
    last_name: z.string().max(200).nullable().optional(),
    expires_at: isoTimestamp.optional(),
  }),
  /** When the request was committed (for mail_end_to_end_seconds). */
  requested_at: isoTimestamp.optional(),
});
export type MailRequestedPayload = z.infer<typeof mailRequestedPayload>;

export const DELIVERY_STATUSES = ['queued', 'sent', 'deferred', 'failed'] as const;
export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

export const ERROR_CLASSES = ['timeout', 'connection', 'auth', 'rejected', 'circuit_open', 'unknown'] as const;
export type ErrorClass = (typeof ERROR_CLASSES)[number];

export const mailDeliveryStatusPayload = z.object({
  request_id: z.string().uuid(),
  user_id: z.string().uuid(),
  status: z.enum(DELIVERY_STATUSES),
  attempt: z.number().int().nonnegative(),
  error_class: z.enum(ERROR_CLASSES).nullable(),
  smtp_message_id: z.string().optional(),
  /**
   * The DLQ replay generation: absent or 0 for a request's original delivery, +1 per replay. Optional so
   * events written before it existed stay valid; consumers order by it before `attempt`.
   */
  generation: z.number().int().nonnegative().optional(),
  /** Which SMTP provider sent (or permanently rejected) it, by label; absent from older mailers. */
  provider: z.string().max(64).optional(),
  /** With `deferred`: when the mailer will try again; absent from older mailers. */
  next_attempt_at: isoTimestamp.optional(),
});
export type MailDeliveryStatusPayload = z.infer<typeof mailDeliveryStatusPayload>;

export const EVENT_TYPE = {
  userRegistered: 'user.registered',
  mailRequested: 'mail.requested',
  mailDeliveryStatus: 'mail.delivery_status',
} as const;

const payloadSchemas = {
  [EVENT_TYPE.userRegistered]: userRegisteredPayload,
  [EVENT_TYPE.mailRequested]: mailRequestedPayload,
  [EVENT_TYPE.mailDeliveryStatus]: mailDeliveryStatusPayload,
} as const;

export type EventType = keyof typeof payloadSchemas;
export type PayloadOf<T extends EventType> = z.infer<(typeof payloadSchemas)[T]>;

export function buildEnvelope<T extends EventType>(opts: {
  type: T;
  aggregateType: string;
  aggregateId: string;
  payload: PayloadOf<T>;
  id?: string;
  occurredAt?: Date;
}): Envelope<PayloadOf<T>> {
  return {
    id: opts.id ?? randomUUID(),
    type: opts.type,
    version: 1,
    occurred_at: (opts.occurredAt ?? new Date()).toISOString(),
    aggregate_type: opts.aggregateType,
    aggregate_id: opts.aggregateId,
    payload: opts.payload,
  };
}

export class InvalidEventError extends Error {
  readonly retriable = false;
  constructor(message: string) {
    super(message);
    this.name = 'InvalidEventError';
  }
}

/**
 * Parses a Kafka message value into a typed envelope of the expected type; throws InvalidEventError
 * (non-retriable: a poison message is parked, never retried) on anything else.
 */
export function parseEvent<T extends EventType>(
  value: Buffer | string | null,
  expectedType: T,
): Envelope<PayloadOf<T>> {
  if (value === null) throw new InvalidEventError('message has no value');
  let json: unknown;
  try {
    json = JSON.parse(typeof value === 'string' ? value : value.toString('utf8'));
  } catch {
    throw new InvalidEventError('message value is not JSON');
  }
  const envelope = envelopeSchema.safeParse(json);
  if (!envelope.success) throw new InvalidEventError(`invalid envelope: ${summarize(envelope.error)}`);
  if (envelope.data.type !== expectedType) {
    throw new InvalidEventError(
      `unexpected event type ${JSON.stringify(envelope.data.type).slice(0, 80)}, wanted ${expectedType}`,
    );
  }
  const payload = payloadSchemas[expectedType].safeParse(envelope.data.payload);
  if (!payload.success) throw new InvalidEventError(`invalid ${expectedType} payload: ${summarize(payload.error)}`);
  return { ...envelope.data, payload: payload.data as PayloadOf<T> };
}

function summarize(error: z.ZodError): string {
  return error.issues
    .slice(0, 5)
    .map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`)
    .join(', ');
}

/** Kafka headers carrying the envelope's id and type, so tools can route without parsing the value. */
export function envelopeHeaders(envelope: Pick<Envelope, 'id' | 'type'>): Record<string, string> {
  return { id: envelope.id, type: envelope.type };
}
