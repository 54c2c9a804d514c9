import MailComposer from 'nodemailer/lib/mail-composer';
import { renderConfirmationMail } from '../src/domain/render-confirmation-mail';
import {
  composeAlternative,
  createMailComposer,
  fromHeaderLines,
  type AlternativeMail,
} from '../src/data-access/mime-message';

const SENDERS = [
  'no-reply@mail.example.test',
  'Registration <no-reply@mail.example.test>',
  '"Registration, Accounts" <no-reply@mail.example.test>',
  'Plattform für Anmeldungen <no-reply@mail.example.test>',
  '登録サービス <no-reply@mail.example.test>',
  `${'A very long sender name '.repeat(4)}<no-reply@mail.example.test>`,
];

/** What MailComposer builds for the same mail: the reference, byte for byte. */
async function composedByNodemailer(from: string, mail: AlternativeMail): Promise<Buffer> {
  const options = { from, ...mail } as ConstructorParameters<typeof MailComposer>[0];
  return new MailComposer(options).compile().build();
}

/** A seeded generator (mulberry32): the same names on every run, so a failure can be replayed. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Names drawn from Latin, accented Latin, Greek, Cyrillic, CJK, Arabic, emoji, combining marks, HTML specials. */
function randomName(next: () => number): string {
  const ranges: Array<[number, number]> = [
    [0x41, 0x7a],
    [0xc0, 0x17f],
    [0x391, 0x3c9],
    [0x410, 0x44f],
    [0x4e00, 0x4fff],
    [0x627, 0x64a],
    [0x1f600, 0x1f64f],
    [0x300, 0x36f],
  ];
  const specials = ['<', '>', '&', '"', "'", ' ', '=', '.', '\t', '\r\n'];
  const length = 1 + Math.floor(next() * 50);
  let name = '';
  for (let i = 0; i < length; i++) {
    if (next() < 0.1) {
      name += specials[Math.floor(next() * specials.length)];
      continue;
    }
    const [lo, hi] = ranges[Math.floor(next() * ranges.length)] as [number, number];
    name += String.fromCodePoint(lo + Math.floor(next() * (hi - lo + 1)));
  }
  return name;
}

function confirmation(firstName: string, lastName: string, expiresAt?: string): AlternativeMail {
  const vars = {
    first_name: firstName,
    last_name: lastName,
    code: '042917',
    ...(expiresAt ? { expires_at: expiresAt } : {}),
  };
  const rendered = renderConfirmationMail({ to: 'user.name+tag@mail.example.test', vars } as Parameters<
    typeof renderConfirmationMail
  >[0]);
  return {
    ...rendered,
    messageId: '<0b6f3c9e-6a53-4a53-9d59-2a6d1c3c2f10@mail.example.test>',
    date: new Date('2026-11-26T22:15:49Z'),
    baseBoundary: '0123456789abcdef',
  };
}

describe('mailer: a text + HTML mail composed without a MIME tree (mime-message)', () => {
  it.each(SENDERS)('writes the confirmation mail byte for byte as MailComposer does, from %s', async (from) => {
    const fromLines = fromHeaderLines(from);
    const names: Array<[string, string]> = [
      ['Jane', 'Doe'],
      ['José', 'Müller'],
      ['山田', '太郎'],
      ['😀 Smiley', ''],
      ['', ''],
      ['<script>alert("x")</script>', '& Co'],
      ['A'.repeat(60), 'B'.repeat(30)],
      ['Ωμέγα', 'Αλφα'.repeat(8)],
    ];
    for (const [first, last] of names) {
      for (const expiry of [undefined, '2026-11-27T10:00:00Z']) {
        const mail = confirmation(first, last, expiry);
        const ours = composeAlternative(fromLines, mail);
        expect(ours?.toString('utf8')).toBe((await composedByNodemailer(from, mail)).toString('utf8'));
      }
    }
  });

  it('writes 300 mails with names drawn from many scripts byte for byte as MailComposer does', async () => {
    const next = seeded(20261126);
    const from = SENDERS[1] as string;
    const fromLines = fromHeaderLines(from);
    let composed = 0;
    for (let i = 0; i < 300; i++) {
      const mail = confirmation(randomName(next), randomName(next), next() < 0.5 ? '2026-11-27T10:00:00Z' : undefined);
      const ours = composeAlternative(fromLines, mail);
      const theirs = await composedByNodemailer(from, mail);
      if (ours === undefined) continue;
      composed += 1;
      expect(ours.equals(theirs)).toBe(true);
    }
    // The template's English outweighs any name: every one of them is composed here, none left to MailComposer.
    expect(composed).toBe(300);
  });

  it('folds and encodes as MailComposer does: a long subject, a long recipient, a text line over 76', async () => {
    const from = SENDERS[0] as string;
    const mail: AlternativeMail = {
      to: `${'l'.repeat(64)}@${'sub.'.repeat(10)}example.test`,
      subject: `${'Confirm your email address '.repeat(5)}now`,
      text: `Hello,\n${'word '.repeat(40)}\nbye\n`,
      html: '<p>hi</p>',
      messageId: '<abc@example.test>',
      date: new Date('2026-01-02T03:04:05Z'),
      baseBoundary: 'fedcba9876543210',
    };
    const ours = composeAlternative(fromHeaderLines(from), mail);
    expect(ours?.toString('utf8')).toBe((await composedByNodemailer(from, mail)).toString('utf8'));
    expect(ours?.toString('utf8')).toContain('Content-Transfer-Encoding: quoted-printable');
  });

  it.each([
    ['a line of exactly 76 characters', `${'x'.repeat(76)}\nend`],
    ['a line of 77 characters', `${'x'.repeat(77)}\nend`],
    ['77 characters split by a lone CR', `${'x'.repeat(40)}\r${'x'.repeat(37)}`],
    ['77 characters split by U+2028', `${'x'.repeat(40)}\u2028${'x'.repeat(37)}`],
    ['tabs and DEL', 'a\tb\u007fc'],
    ['a form feed', 'page one\fpage two, a little more Latin to outweigh it'],
    ['as many non-Latin units as letters, minus one', `abcd${'é'.repeat(3)}`],
  ])('chooses the encoding of a part as MailComposer does: %s', async (_story, text) => {
    const from = SENDERS[0] as string;
    const mail = { ...confirmation('Jane', 'Doe'), text };
    const ours = composeAlternative(fromHeaderLines(from), mail);
    expect(ours?.toString('utf8')).toBe((await composedByNodemailer(from, mail)).toString('utf8'));
  });

  it('writes a recipient with an upper-case domain as MailComposer does (the domain lower-cased, the local part kept)', async () => {
    const from = SENDERS[1] as string;
    const mail = { ...confirmation('Jane', 'Doe'), to: 'Jane.Doe+X@Mail.Example.TEST' };
    const ours = composeAlternative(fromHeaderLines(from), mail);
    expect(ours?.toString('utf8')).toBe((await composedByNodemailer(from, mail)).toString('utf8'));
    expect(ours?.toString('utf8')).toContain('To: Jane.Doe+X@mail.example.test');
  });

  it('gives the composed mail the envelope MailComposer gives it (domains lower-cased), sender and recipient', () => {
    const mailFrom = 'Registration <No-Reply@Mail.Example.TEST>';
    const compose = createMailComposer(mailFrom, 'No-Reply@Mail.Example.TEST');
    const rendered = {
      ...confirmation('Jane', 'Doe'),
      to: 'Jane@Example.TEST',
      requestId: '0b6f3c9e-6a53-4a53-9d59-2a6d1c3c2f10',
    };
    const how = compose(rendered);
    expect('composed' in how).toBe(true);
    const reference = new MailComposer({
      from: mailFrom,
      to: rendered.to,
      envelope: { from: 'No-Reply@Mail.Example.TEST', to: [rendered.to] },
      text: 'x',
    }).compile();
    if (!('composed' in how)) return;
    expect(how.composed.envelope).toEqual(reference.getEnvelope());
    expect(how.composed.envelope).toEqual({ from: 'No-Reply@mail.example.test', to: ['Jane@example.test'] });
  });

  const plain: AlternativeMail = {
    to: 'user@example.test',
    subject: 'Confirm your email address',
    text: 'code 123456',
    html: '<p>code 123456</p>',
    messageId: '<abc@example.test>',
    date: new Date('2026-01-02T03:04:05Z'),
    baseBoundary: 'fedcba9876543210',
  };
  it.each([
    ['a subject that needs encoded words', { subject: 'Bestätigen Sie Ihre Adresse' }],
    ['a subject with a line break', { subject: 'hello\r\nBcc: x@evil.test' }],
    ['a subject with a double quote (MimeNode encodes the whole of it)', { subject: 'Say "hi" now' }],
    ['a recipient with a display name', { to: 'User <user@example.test>' }],
    ['a recipient with a non-ASCII domain', { to: 'user@exämple.test' }],
    ['no text part', { text: '' }],
    ['no HTML part', { html: '' }],
    ['an HTML part that base64 would encode', { html: `<p>${'漢字'.repeat(40)}</p>` }],
    ['a Message-ID that is not plain', { messageId: '<a b@example.test>' }],
    ['a base boundary that is not 16 hex characters', { baseBoundary: 'xyz' }],
    ['an invalid date', { date: new Date(Number.NaN) }],
  ])('leaves %s to MailComposer (undefined)', (_story, change: Partial<AlternativeMail>) => {
    expect(composeAlternative(fromHeaderLines(SENDERS[0] as string), plain)).toBeDefined();
    expect(composeAlternative(fromHeaderLines(SENDERS[0] as string), { ...plain, ...change })).toBeUndefined();
  });
});
