import { buildEnvelope, InvalidEventError } from '@shared/events';
import { maskAddress, parseDlqRecord, planReplay } from '../scripts/replay-dlq';

const envelope = buildEnvelope({
  type: 'mail.requested',
  aggregateType: 'user',
  aggregateId: '5b0f3c52-3c84-4b53-9a43-3d3b1f3e0a01',
  payload: {
    request_id: '8f5e8a3e-6a3c-4d1b-a1b3-6e4f7b0c2d11',
    user_id: '5b0f3c52-3c84-4b53-9a43-3d3b1f3e0a01',
    to: 'jane@example.com',
    template: 'email_confirmation',
    vars: { code: '123456', expires_at: '2030-01-01T00:00:00.000Z' },
  },
});
const error = { class: 'auth', message: '535 5.7.8 authentication failed' };

describe('reading a DLQ record', () => {
  test('when original is the envelope object, returns it with the last error', () => {
    const record = parseDlqRecord(JSON.stringify({ original: envelope, error, attempts: 8, failed_at: '2025-01-01T00:00:00Z' }));
    expect(record).toEqual({ envelope, errorClass: 'auth', attempts: 8, failedAt: '2025-01-01T00:00:00Z' });
  });

  test('when original is a string holding the raw JSON value, parses it', () => {
    const record = parseDlqRecord(Buffer.from(JSON.stringify({ original: JSON.stringify(envelope), error, attempts: 8, failed_at: null })));
    expect(record.envelope).toEqual(envelope);
  });

  test('when the record is the bare envelope, accepts it', () => {
    expect(parseDlqRecord(JSON.stringify(envelope)).envelope).toEqual(envelope);
  });

  test('when the original is a poison message, throws InvalidEventError', () => {
    expect(() => parseDlqRecord(JSON.stringify({ original: 'not json', error }))).toThrow(InvalidEventError);
    expect(() => parseDlqRecord(JSON.stringify({ original: { ...envelope, type: 'user.registered' }, error }))).toThrow(InvalidEventError);
    expect(() => parseDlqRecord('{')).toThrow(InvalidEventError);
    expect(() => parseDlqRecord(null)).toThrow(InvalidEventError);
  });
});

describe('planning a replay', () => {
  const record = { envelope, errorClass: 'auth', attempts: 8, failedAt: null };
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
    expect(planReplay(record, { now: later })).toEqual({ replay: false, reason: expect.stringContaining('code expired') });
    expect(planReplay(record, { now: later, includeExpired: true }).replay).toBe(true);
  });
});

test('addresses are masked in the replay log', () => {
  expect(maskAddress('jane@example.com')).toBe('j***@example.com');
  expect(maskAddress('nonsense')).toBe('***');
});
