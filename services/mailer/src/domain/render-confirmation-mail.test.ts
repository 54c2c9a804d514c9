import { renderConfirmationMail, validateRecipient } from './render-confirmation-mail';
import { SendFailure } from './send-failure';

describe('renderConfirmationMail', () => {
  it('puts the code in both bodies and the UTF-8 name in the greeting only, never in the subject', () => {
    const mail = renderConfirmationMail({
      to: 'zoe@example.test',
      vars: { code: '042517', first_name: 'Zoë', last_name: 'Ünal-Łódź' },
    });
    expect(mail.subject).toBe('Confirm your email address');
    expect(mail.text).toContain('042517');
    expect(mail.text).toContain('Hello Zoë Ünal-Łódź,');
    expect(mail.html).toMatch(/font-size: 32px[^>]*>042517</);
  });

  it('escapes names in HTML and flattens CR/LF so no line of user data can become a header', () => {
    const mail = renderConfirmationMail({
      to: 'eve@example.test',
      vars: { code: '123456', first_name: 'Eve\r\nBcc: x@evil.test <b>', last_name: '"&\'' },
    });
    expect(mail.subject).not.toMatch(/[\r\n]/);
    expect(mail.subject).toBe('Confirm your email address');
    expect(mail.html).toContain('Eve Bcc: x@evil.test &lt;b&gt; &quot;&amp;&#39;');
    expect(mail.html).not.toContain('<b>');
    expect(mail.text).not.toMatch(/\r|\nBcc/);
  });

  it(
    'when the name is a message (long text in first and last name), the greeting carries at most 40 characters ' +
      'of it and the subject none',
    () => {
      const pitch = 'Your account is suspended. Call +1 555 0100 now to restore it, or visit evil.example';
      const mail = renderConfirmationMail({
        to: 'a@example.test',
        vars: { code: '123456', first_name: pitch, last_name: pitch },
      });
      expect(mail.subject).toBe('Confirm your email address');
      const greeting = mail.text.split('\n')[0] ?? '';
      expect(greeting).toBe(`Hello ${pitch.slice(0, 39).trimEnd()}…,`);
      expect(mail.text).not.toContain('evil.example');
      expect(mail.html).not.toContain('evil.example');
    },
  );

  it('greets without a name when none is given and mentions the expiry when known', () => {
    const mail = renderConfirmationMail({
      to: 'a@example.test',
      vars: { code: '000001', first_name: null, expires_at: '2026-11-25T12:30:00Z' },
    });
    expect(mail.subject).toBe('Confirm your email address');
    expect(mail.text).toContain('Hello,');
    expect(mail.text).toContain('2026-11-25 12:30 UTC');
  });

  it.each([
    'a@example.test\r\nBcc: x@evil.test',
    'a@example.test, b@evil.test',
    'Name <a@example.test>',
    'no-at-sign',
    'a @example.test',
    'a@localhost',
  ])('rejects %j as a permanent failure', (to) => {
    expect(() => validateRecipient(to)).toThrow(SendFailure);
    try {
      validateRecipient(to);
    } catch (err) {
      expect(err).toMatchObject({ errorClass: 'rejected', retriable: false });
    }
  });

  it('accepts ordinary addresses', () => {
    expect(validateRecipient('first.last+tag@mail.example.co.uk')).toBe('first.last+tag@mail.example.co.uk');
  });
});
