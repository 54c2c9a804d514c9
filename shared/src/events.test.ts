import { randomUUID } from 'node:crypto';
import { buildEnvelope, InvalidEventError, parseEvent } from './events';
import { isRetriable } from './errors';

const status = () =>
  buildEnvelope({
    type: 'mail.delivery_status',
    aggregateType: 'user',
    aggregateId: randomUUID(),
    payload: { request_id: randomUUID(), user_id: randomUUID(), status: 'sent', attempt: 1, error_class: null, smtp_message_id: '<x@y>' },
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
