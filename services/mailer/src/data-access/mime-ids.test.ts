import crypto from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer';
import { createBoundaryPool, messageIdFor, shareRootBoundary } from './mime-ids';

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

  describe('shareRootBoundary: MIME leaves take the root base boundary instead of drawing one', () => {
    // Our mail as the transport hands it to nodemailer, with what varies per build fixed.
    const compile = () =>
      new MailComposer({
        from: 'no-reply@example.test',
        to: 'user@example.test',
        subject: 'Confirm your email',
        text: 'Your code: 123456',
        html: '<p>Your code: <b>123456</b></p>',
        messageId: '<0b6f3c9e@example.test>',
        date: new Date('2026-11-26T12:00:00Z'),
        baseBoundary: '0123456789abcdef',
      } as ConstructorParameters<typeof MailComposer>[0] & { baseBoundary: string }).compile();

    it('builds the same bytes with no random draw per mail (nodemailer drew one per leaf)', async () => {
      const draws = jest.spyOn(crypto, 'randomBytes');
      try {
        const before = (await compile().build()).toString();
        const drawnBefore = draws.mock.calls.length;
        expect(shareRootBoundary()).toBe(true);
        draws.mockClear();
        const after = (await compile().build()).toString();
        expect(drawnBefore).toBe(2);
        expect(draws).not.toHaveBeenCalled();
        expect(after).toBe(before);
        expect(after).toContain('----_NmP-0123456789abcdef-Part_1');
      } finally {
        draws.mockRestore();
      }
    });

    it('keeps a given base boundary in either form of createChild; with no createChild, does nothing', () => {
      const seen: unknown[] = [];
      const proto = {
        rootNode: { baseBoundary: 'root' },
        createChild(this: unknown, contentType: unknown, options?: unknown) {
          seen.push([contentType, options]);
          return undefined;
        },
      };
      expect(shareRootBoundary(proto)).toBe(true);
      expect(shareRootBoundary(proto)).toBe(true);
      proto.createChild('text/plain', { filename: 'a' });
      proto.createChild('text/plain', { baseBoundary: 'own' });
      proto.createChild({ filename: 'b' } as unknown as string);
      expect(seen).toEqual([
        ['text/plain', { filename: 'a', baseBoundary: 'root' }],
        ['text/plain', { baseBoundary: 'own' }],
        [{ filename: 'b', baseBoundary: 'root' }, undefined],
      ]);
      expect(shareRootBoundary({} as unknown as Parameters<typeof shareRootBoundary>[0])).toBe(false);
    });
  });
});
