import { randomUUID } from 'node:crypto';
import MailComposer from 'nodemailer/lib/mail-composer';
import { createLogger } from '@shared/logger';
import { parseMailerConfig } from '../src/config';
import { createSmtpTransport } from '../src/data-access/mail-transport';
import { smtpTransportSuite, testMail } from './support/smtp-transport-suite';

const logger = createLogger({ service: 'mailer-test', level: 'silent' });
const mail = (requestId?: string) => testMail('mid', requestId);
/** The multipart boundary a raw message declares. */
const boundaryOf = (raw: string) => /boundary="?([^";\r\n]+)"?/.exec(raw)?.[1];

describe('mailer: the Message-ID names the mail request; boundaries stay random', () => {
  const suite = smtpTransportSuite({
    SMTP_TIMEOUT_MS: '3000',
    MAIL_FROM: 'Registration <no-reply@mail.example.test>',
  });

  it('when a request is sent twice (a retry after a lost answer), then both copies carry <request id@sender domain>', async () => {
    const requestId = randomUUID();
    const first = await suite.transport.send(mail(requestId));
    const again = await suite.transport.send(mail(requestId));

    const expected = `<${requestId}@mail.example.test>`;
    expect(first.messageId).toBe(expected);
    expect(again.messageId).toBe(expected);
    const received = suite.smtp.messages.slice(-2);
    expect(received.map((m) => m.messageId)).toEqual([expected, expected]);
    // Still a whole text + HTML mail.
    for (const m of received) {
      expect(m.text.trim()).toBe('code 123456');
      expect(m.html).toContain('<p>code 123456</p>');
    }
  });

  it('when mails are sent, then each declares a boundary of its own', async () => {
    for (let i = 0; i < 5; i++) await suite.transport.send(mail(randomUUID()));
    const boundaries = suite.smtp.messages.slice(-5).map((m) => boundaryOf(m.raw));
    for (const b of boundaries) expect(b).toMatch(/[0-9a-f]{16}/);
    expect(new Set(boundaries).size).toBe(5);
  });

  it('when a mail names its request, then it goes out composed by mime-message, past MailComposer', async () => {
    const compile = jest.spyOn(MailComposer.prototype, 'compile');
    try {
      await suite.transport.send(mail(randomUUID()));
      expect(compile).not.toHaveBeenCalled();
      // With no Message-ID of ours, MailComposer builds it.
      await suite.transport.send(mail());
      expect(compile).toHaveBeenCalledTimes(1);
      const received = suite.smtp.messages.slice(-2);
      for (const m of received) expect(m.text.trim()).toBe('code 123456');
    } finally {
      compile.mockRestore();
    }
  });

  it('when the transport was closed, then a send fails at once, composed or not (nodemailer never answers it)', async () => {
    const closedOne = createSmtpTransport({
      config: parseMailerConfig({
        SMTP_HOST: suite.smtp.host,
        SMTP_PORT: String(suite.smtp.port),
        SMTP_POOL_SIZE: '1',
      }),
      logger,
    });
    await closedOne.close();
    const answer = (p: Promise<unknown>) =>
      Promise.race([
        p.then(
          () => 'sent',
          (err: Error) => err.message,
        ),
        new Promise((resolve) => setTimeout(() => resolve('no answer after 2 s'), 2_000)),
      ]);
    expect(await answer(closedOne.send(mail(randomUUID())))).toBe('SMTP transport closed');
    expect(await answer(closedOne.send(mail()))).toBe('SMTP transport closed');
  });

  it('when a mail names no request, then nodemailer gives it a random Message-ID', async () => {
    const a = await suite.transport.send(mail());
    const b = await suite.transport.send(mail());
    expect(a.messageId).toMatch(/^<[0-9a-f-]+@mail\.example\.test>$/);
    expect(a.messageId).not.toBe(b.messageId);
  });
});
