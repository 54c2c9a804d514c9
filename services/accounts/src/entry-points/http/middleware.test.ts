import { preferredWaitSeconds } from './middleware';

describe('Prefer: wait parsing (RFC 7240)', () => {
  test.each([
    ['wait=5', 5],
    ['respond-async, wait=3', 3],
    ['WAIT = 2', 2],
    ['wait="4"', 4],
    ['wait=30', 10],
    ['wait=0', 0],
    ['wait=soon', undefined],
    ['wait=-1', undefined],
    ['handling=lenient', undefined],
    [undefined, undefined],
  ])('%s -> %s', (header, expected) => {
    expect(preferredWaitSeconds(header, 10)).toBe(expected);
  });
});
