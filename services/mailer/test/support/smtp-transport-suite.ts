import { randomUUID } from 'node:crypto';
import { createLogger } from '@shared/logger';
import { startSmtpTestServer, type SmtpTestServer } from '../../../../test/support/smtp-test-server';
import { parseMailerConfig } from '../../src/config';
import { createSmtpTransport, type MailTransport } from '../../src/data-access/mail-transport';

/** A small text + HTML mail to a fresh address; with a request id it is one the transport composes itself. */
export const testMail = (label: string, requestId?: string) => ({
  to: `${label}-${randomUUID()}@example.test`,
  subject: 'hello',
  text: 'code 123456',
  html: '<p>code 123456</p>',
  ...(requestId === undefined ? {} : { requestId }),
});

/**
 * For one describe block: a real SMTP test server, started before its tests, and the mailer's pooled SMTP
 * transport to it with `settings` (mailer env names), both closed after them.
 */
export function smtpTransportSuite(settings: Record<string, string> = {}) {
  const suite = {} as { smtp: SmtpTestServer; transport: MailTransport };
  beforeAll(async () => {
    suite.smtp = await startSmtpTestServer();
    const config = parseMailerConfig({
      SMTP_HOST: suite.smtp.host,
      SMTP_PORT: String(suite.smtp.port),
      SMTP_POOL_SIZE: '1',
      ...settings,
    });
    suite.transport = createSmtpTransport({
      config,
      logger: createLogger({ service: 'mailer-test', level: 'silent' }),
    });
  });
  afterAll(async () => {
    await suite.transport?.close();
    await suite.smtp?.close();
  });
  return suite;
}
