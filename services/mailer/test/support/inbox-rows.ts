import { randomUUID } from 'node:crypto';
import type { NewRequest } from '../../src/data-access/inbox-repository';

/** An inbox row as the intake records it (a confirmation mail for Ada); overrides replace any field. */
export function newInboxRequest(overrides: Partial<NewRequest> = {}): NewRequest {
  const requestId = overrides.requestId ?? randomUUID();
  const code = '123456';
  return {
    requestId,
    eventId: randomUUID(),
    userId: randomUUID(),
    recipient: 'ada@example.test',
    template: 'email_confirmation',
    vars: { code, first_name: 'Ada' },
    requestedAt: null,
    original: JSON.stringify({ payload: { request_id: requestId, vars: { code } } }),
    ...overrides,
  };
}
