import { randomUUID } from 'node:crypto';
import { buildEnvelope, InvalidEventError, parseEvent } from './events';
import { isRetriable } from './errors';

const status = () =>
  buildEnvelope({
    type: 'mail.delivery_status',
    aggregateType: 'user',
    aggregateId: randomUUID(),
    payload: {
      request_id: randomUUID(),
      user_id: randomUUID(),
      status: 'sent',
      attempt: 1,
      error_class: null,
      smtp_message_id: '<x@y>',
    },
  });

describe('parseEvent', () => {
  it('returns a typed envelope for a valid event', () => {
    const envelope = status();
    expect(parseEvent(Buffer.from(JSON.stringify(envelope)), 'mail.delivery_status')).toEqual(envelope);
  });

  it.each([
    ['no value', null],
    ['not JSON', '{nope'],
    ['not an envelope', JSON.stringify({ hello: 'world' })],
    ['the wrong type', JSON.stringify({ ...status(), type: 'user.registered' })],
    ['a bad payload', JSON.stringify({ ...status(), payload: { status: 'teleported' } })],
    ['a timestamp PostgreSQL cannot store', JSON.stringify({ ...status(), occurred_at: '0000-01-01T00:00:00Z' })],
  ])('rejects %s with a non-retriable InvalidEventError', (_label, value) => {
    let error: unknown;
    try {
      parseEvent(value, 'mail.delivery_status');
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(InvalidEventError);
    expect(isRetriable(error)).toBe(false);
  });
});

describe('mail.requested timestamps', () => {
  it.each(['1', '12345', '0000-01-01T00:00:00Z', 'yesterday'])('rejects requested_at %j as poison', (requestedAt) => {
    const userId = randomUUID();
    const envelope = buildEnvelope({
      type: 'mail.requested',
      aggregateType: 'user',
      aggregateId: userId,
      payload: {
        request_id: randomUUID(),
        user_id: userId,
        to: 'a@example.test',
        template: 'email_confirmation',
        vars: { code: '123456' },
        requested_at: new Date().toISOString(),
      },
    });
    const value = JSON.stringify({ ...envelope, payload: { ...envelope.payload, requested_at: requestedAt } });
    expect(() => parseEvent(value, 'mail.requested')).toThrow(InvalidEventError);
  });
});

describe('mail.delivery_status: provider and next attempt (issue 13)', () => {
  it(
    'when a status carries provider and next_attempt_at, then both are kept; when an older mailer omits them, ' +
      'it still parses',
    () => {
      const withFields = status();
      const at = new Date(Date.now() + 30_000).toISOString();
      const value = {
        ...withFields,
        payload: {
          ...withFields.payload,
          status: 'deferred',
          error_class: 'circuit_open',
          provider: 'backup',
          next_attempt_at: at,
        },
      };
      const parsed = parseEvent(JSON.stringify(value), 'mail.delivery_status');
      expect(parsed.payload.provider).toBe('backup');
      expect(parsed.payload.next_attempt_at).toBe(at);
      expect(parseEvent(JSON.stringify(status()), 'mail.delivery_status').payload.provider).toBeUndefined();
    },
  );
});
