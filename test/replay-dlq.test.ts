import { buildEnvelope, InvalidEventError } from '@shared/events';
import { sealTestCode } from './support/payload-key';
import { maskAddress, parseDlqRecord, planReplay } from '../scripts/replay-dlq';
import {
  DLQ_ORIGINAL_MAX_BYTES,
  dlqRecordEvent,
  type DlqRecordInput,
} from '../services/mailer/src/domain/delivery-events';

const envelope = buildEnvelope({
  type: 'mail.requested',
  aggregateType: 'user',
  aggregateId: '5b0f3c52-3c84-4b53-9a43-3d3b1f3e0a01',
  payload: {
    request_id: '8f5e8a3e-6a3c-4d1b-a1b3-6e4f7b0c2d11',
    user_id: '5b0f3c52-3c84-4b53-9a43-3d3b1f3e0a01',
    to: 'jane@example.com',
    template: 'email_confirmation',
    vars: {
      code: sealTestCode('123456', '8f5e8a3e-6a3c-4d1b-a1b3-6e4f7b0c2d11'),
      expires_at: '2030-01-01T00:00:00.000Z',
    },
  },
});
const at = new Date('2025-01-01T00:00:00Z');
/** A record exactly as the mailer writes it: built with the mailer's own function, so the two cannot drift. */
const dlqValue = (input: Partial<DlqRecordInput> = {}): string =>
  dlqRecordEvent(
    {
      reason: 'retries_exhausted',
      error: '535 5.7.8 authentication failed',
      errorClass: 'auth',
      original: JSON.stringify(envelope),
      requestId: envelope.payload.request_id,
      userId: envelope.payload.user_id,
      attempts: 8,
      ...input,
    },
    at,
  ).value;

describe('reading a DLQ record the mailer wrote', () => {
  test('when the original is text, returns the envelope with the last error', () => {
    expect(parseDlqRecord(dlqValue())).toEqual({
      envelope,
      reason: 'retries_exhausted',
      errorClass: 'auth',
      attempts: 8,
      failedAt: at.toISOString(),
    });
    expect(parseDlqRecord(Buffer.from(dlqValue())).envelope).toEqual(envelope);
  });

  test('when the original is not clean UTF-8 (stored base64), decodes it', () => {
    const text = JSON.stringify({
      ...envelope,
      payload: { ...envelope.payload, vars: { ...envelope.payload.vars, first_name: 'Ad@' } },
    });
    const original = Buffer.from(text, 'utf8');
    original[original.indexOf('Ad@') + 2] = 0xff; // an invalid UTF-8 byte inside a string
    const value = JSON.parse(dlqValue({ original })) as {
      original_value: string | null;
      original_value_base64: string | null;
    };
    expect(value.original_value).toBeNull();
    expect(value.original_value_base64).not.toBeNull();
    expect(parseDlqRecord(dlqValue({ original })).envelope).toMatchObject({
      id: envelope.id,
      payload: { request_id: envelope.payload.request_id },
    });
  });

  test('when the original was truncated, it is not replayable', () => {
    expect(() =>
      parseDlqRecord(dlqValue({ original: `${JSON.stringify(envelope)}${' '.repeat(DLQ_ORIGINAL_MAX_BYTES)}` })),
    ).toThrow(/truncated/);
  });

  test('when the original is a poison message or not a mail.requested, throws InvalidEventError', () => {
    expect(() =>
      parseDlqRecord(dlqValue({ reason: 'invalid_request', original: 'not json', errorClass: null })),
    ).toThrow(InvalidEventError);
    expect(() =>
      parseDlqRecord(dlqValue({ original: JSON.stringify({ ...envelope, type: 'user.registered' }) })),
    ).toThrow(InvalidEventError);
    expect(() => parseDlqRecord(dlqValue({ original: null }))).toThrow(InvalidEventError);
    expect(() => parseDlqRecord('{')).toThrow(InvalidEventError);
    expect(() => parseDlqRecord(null)).toThrow(InvalidEventError);
  });
});

describe('planning a replay', () => {
  const record = { envelope, reason: 'retries_exhausted', errorClass: 'auth', attempts: 8, failedAt: null };
  const now = new Date('2025-06-01T12:00:00Z');

  test('gives the envelope a new id (the mailer saw the old one) and keeps the request', () => {
    const plan = planReplay(record, { now });
    if (!plan.replay) throw new Error(`expected a replay, got ${plan.reason}`);
    expect(plan.envelope.id).not.toBe(envelope.id);
    expect(plan.envelope).toEqual({ ...envelope, id: plan.envelope.id, occurred_at: now.toISOString() });
  });

  test('with keepId, re-produces the envelope unchanged', () => {
    expect(planReplay(record, { now, keepId: true })).toEqual({ replay: true, envelope });
  });

  test('skips a request whose code has expired, unless told to include it', () => {
    const later = new Date('2031-01-01T00:00:00Z');
    expect(planReplay(record, { now: later })).toEqual({
      replay: false,
      reason: expect.stringContaining('code expired'),
    });
    expect(planReplay(record, { now: later, includeExpired: true }).replay).toBe(true);
  });
});

test('addresses are masked in the replay log', () => {
  expect(maskAddress('jane@example.com')).toBe('j***@example.com');
  expect(maskAddress('nonsense')).toBe('***');
});
