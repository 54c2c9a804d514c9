import { createLogger } from '@shared/logger';
import { startSmtpTestServer, type SmtpFault, type SmtpTestServer } from '../../../test/support/smtp-test-server';
import { parseMailerConfig } from '../src/config';
import { createSmtpTransport, type MailTransport } from '../src/data-access/mail-transport';
import { classifySmtpError } from '../src/domain/classify-smtp-error';

const logger = createLogger({ service: 'mailer-test', level: 'silent' });
let seq = 0;
const mail = () => ({
  to: `pipe-${Date.now()}-${(seq += 1)}@example.test`,
  subject: 'hello',
  text: 'code 123456',
  html: '<p>code 123456</p>',
});

/** The parts of a send error the mailer reads (classification, logs, status). */
const shape = (err: unknown) => {
  const e = err as { code?: string; command?: string; responseCode?: number; response?: string };
  return {
    code: e.code,
    command: e.command,
    responseCode: e.responseCode,
    response: e.response,
    class: classifySmtpError(err),
  };
};

describe('mailer: SMTP PIPELINING of the envelope (RFC 2920)', () => {
  const servers: SmtpTestServer[] = [];
  const transports: MailTransport[] = [];
  const server = async (pipelining: boolean) => {
    const s = await startSmtpTestServer({ pipelining });
    servers.push(s);
    return s;
  };
  const transport = (smtp: SmtpTestServer) => {
    const config = parseMailerConfig({
      SMTP_HOST: smtp.host,
      SMTP_PORT: String(smtp.port),
      SMTP_TIMEOUT_MS: '3000',
      SMTP_POOL_SIZE: '1',
      MAIL_FROM: 'Registration <no-reply@example.test>',
    });
    const t = createSmtpTransport({ config, logger });
    transports.push(t);
    return t;
  };
  /** The client's writes that carry an envelope command. */
  const envelopeWrites = (smtp: SmtpTestServer) => smtp.clientChunks().filter((c) => /^(MAIL|RCPT|DATA)\b/m.test(c));

  afterAll(async () => {
    for (const t of transports) await t.close();
    for (const s of servers) await s.close();
  });

  it('when the server offers PIPELINING, then MAIL FROM, RCPT TO and DATA go in one write and the mail arrives', async () => {
    const smtp = await server(true);
    const t = transport(smtp);
    const m = mail();

    const info = await t.send(m);

    expect(info.response).toMatch(/^250 /);
    expect(smtp.messages.map((r) => r.to)).toEqual([[m.to]]);
    expect(envelopeWrites(smtp)).toEqual([`MAIL FROM:<no-reply@example.test>\r\nRCPT TO:<${m.to}>\r\nDATA\r\n`]);
  });

  it('when the server does not offer PIPELINING, then each command waits for its reply', async () => {
    const smtp = await server(false);
    const t = transport(smtp);
    const m = mail();

    await t.send(m);

    expect(smtp.messages.map((r) => r.to)).toEqual([[m.to]]);
    expect(envelopeWrites(smtp)).toEqual([
      'MAIL FROM:<no-reply@example.test>\r\n',
      `RCPT TO:<${m.to}>\r\n`,
      'DATA\r\n',
    ]);
  });

  it.each<[string, SmtpFault]>([
    ['MAIL FROM is answered 451', { mode: 'transient', code: 451 }],
    ['MAIL FROM is answered 421', { mode: 'transient', code: 421 }],
    ['the recipient is answered 550', { mode: 'reject', code: 550 }],
    ['the recipient is answered 553', { mode: 'reject', code: 553 }],
  ])(
    'when %s, then the error is the one nodemailer gives without pipelining, and the next mail still goes out',
    async (_story, fault) => {
      const pipelined = await server(true);
      const sequential = await server(false);
      const tp = transport(pipelined);
      const ts = transport(sequential);
      await pipelined.setFault(fault);
      await sequential.setFault(fault);

      const errPipelined = await tp.send(mail()).catch((e: unknown) => e);
      const errSequential = await ts.send(mail()).catch((e: unknown) => e);

      expect(errPipelined).toBeInstanceOf(Error);
      expect(shape(errPipelined)).toEqual(shape(errSequential));
      expect(pipelined.messages).toHaveLength(0);

      await pipelined.setFault({ mode: 'healthy' });
      const m = mail();
      await tp.send(m);
      expect(pipelined.messages.map((r) => r.to)).toEqual([[m.to]]);
    },
  );

  it('when a recipient is refused between two other mails, then the mails around it are not disturbed', async () => {
    const smtp = await server(true);
    const t = transport(smtp);
    const bad = mail();
    smtp.rejectRecipient(bad.to);
    const before = mail();
    const after = mail();

    const results = await Promise.allSettled([t.send(before), t.send(bad), t.send(after)]);

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(shape((results[1] as PromiseRejectedResult).reason)).toMatchObject({
      command: 'RCPT TO',
      responseCode: 550,
    });
    expect(smtp.messages.map((r) => r.to[0]).sort()).toEqual([before.to, after.to].sort());
  });
});
