import { createBoundaryPool, messageIdFor } from './mime-ids';

describe('mailer: Message-ID and multipart boundaries (mime-ids)', () => {
  it('names a request <request id@sender domain>, the same on every call', () => {
    const id = '0b6f3c9e-6a53-4a53-9d59-2a6d1c3c2f10';
    expect(messageIdFor(id, 'no-reply@mail.example.test')).toBe(`<${id}@mail.example.test>`);
    expect(messageIdFor(id, 'no-reply@mail.example.test')).toBe(messageIdFor(id, 'no-reply@mail.example.test'));
  });

  it('names the N-th DLQ replay of a request <request id.N@sender domain>', () => {
    const id = '0b6f3c9e-6a53-4a53-9d59-2a6d1c3c2f10';
    expect(messageIdFor(id, 'no-reply@example.test', 0)).toBe(`<${id}@example.test>`);
    expect(messageIdFor(id, 'no-reply@example.test', 2)).toBe(`<${id}.2@example.test>`);
    expect(messageIdFor(id, 'no-reply@example.test', -1)).toBeUndefined();
  });

  it.each([
    ['no request id', undefined, 'no-reply@example.test'],
    ['a request id with a line break', 'abc\r\nBcc: x@evil.test', 'no-reply@example.test'],
    ['a request id with angle brackets', 'a>b<c', 'no-reply@example.test'],
    ['a request id too long for a header', 'a'.repeat(65), 'no-reply@example.test'],
    ['a sender domain with a line break', '0b6f3c9e', 'no-reply@example.test\r\nX: y'],
    ['an empty sender', '0b6f3c9e', ''],
    ['a sender whose domain is not plain', '0b6f3c9e', 'no-reply@exa mple.test'],
  ])('leaves the Message-ID to nodemailer (undefined) for %s', (_story, requestId, sender) => {
    expect(messageIdFor(requestId, sender)).toBeUndefined();
  });

  it('draws 16 hex characters per mail, all different, refilling after a draw is used up', () => {
    const next = createBoundaryPool(4);
    const drawn = Array.from({ length: 50 }, () => next());
    for (const b of drawn) expect(b).toMatch(/^[0-9a-f]{16}$/);
    expect(new Set(drawn).size).toBe(drawn.length);
  });
});
