import { supersedes } from './delivery-status-order';

describe('the delivery-status ordering rule', () => {
  test.each([
    [
      'a higher attempt beats a lower one',
      { status: 'deferred', attempt: 2 },
      { status: 'deferred', attempt: 1 },
      true,
    ],
    ['a lower attempt never wins', { status: 'deferred', attempt: 1 }, { status: 'deferred', attempt: 2 }, false],
    ['at equal attempt, sent beats deferred', { status: 'sent', attempt: 1 }, { status: 'deferred', attempt: 1 }, true],
    [
      'at equal attempt, deferred beats queued',
      { status: 'deferred', attempt: 0 },
      { status: 'queued', attempt: 0 },
      true,
    ],
    [
      'an exact duplicate changes nothing',
      { status: 'deferred', attempt: 1 },
      { status: 'deferred', attempt: 1 },
      false,
    ],
    [
      'a final status is never replaced by a later non-final one',
      { status: 'deferred', attempt: 5 },
      { status: 'sent', attempt: 1 },
      false,
    ],
    [
      'a final status is never replaced by queued',
      { status: 'queued', attempt: 9 },
      { status: 'failed', attempt: 8 },
      false,
    ],
    [
      'a final status at a higher attempt replaces an older final one',
      { status: 'sent', attempt: 3 },
      { status: 'failed', attempt: 2 },
      true,
    ],
    [
      'two finals at one attempt: the stored one stays',
      { status: 'failed', attempt: 2 },
      { status: 'sent', attempt: 2 },
      false,
    ],
    [
      'the first status after queued at attempt 0 applies',
      { status: 'sent', attempt: 1 },
      { status: 'queued', attempt: 0 },
      true,
    ],
    [
      "a DLQ replay's sent at attempt 1 replaces the failed of the original delivery",
      { status: 'sent', attempt: 1, generation: 1 },
      { status: 'failed', attempt: 8 },
      true,
    ],
    [
      "a replay's deferred replaces the failed it retries",
      { status: 'deferred', attempt: 1, generation: 1 },
      { status: 'failed', attempt: 8, generation: 0 },
      true,
    ],
    [
      "a late status of the original delivery never replaces the replay's",
      { status: 'failed', attempt: 8 },
      { status: 'deferred', attempt: 1, generation: 1 },
      false,
    ],
    [
      'within a replay generation the usual rule holds',
      { status: 'deferred', attempt: 3, generation: 2 },
      { status: 'sent', attempt: 1, generation: 2 },
      false,
    ],
  ] as const)('%s', (_label, incoming, current, expected) => {
    expect(supersedes(incoming, current)).toBe(expected);
  });
});
