import { randomUUID } from 'node:crypto';
import { createLogger } from '@shared/logger';
import { startSmtpTestServer, type SmtpTestServer } from '../../../test/support/smtp-test-server';
import { parseMailerConfig } from '../src/config';
import { createSmtpTransport, type MailTransport } from '../src/data-access/mail-transport';

const logger = createLogger({ service: 'mailer-test', level: 'silent' });
const mail = (requestId?: string) => ({
  to: `mark-${randomUUID()}@example.test`,
  subject: 'hello',
  text: 'code 123456',
  html: '<p>code 123456</p>',
  ...(requestId === undefined ? {} : { requestId }),
});
/** The error a send failed with (a send that succeeds fails the test). */
const failure = async (sending: Promise<unknown>): Promise<Record<string, unknown>> => {
  const outcome = await sending.then(
    () => undefined,
    (err: unknown) => err as Record<string, unknown>,
  );
  if (outcome === undefined) throw new Error('the send succeeded');
  return outcome;
};

/**
 * `afterBody` marks the one window SMTP leaves open (the server may hold a mail whose answer never came):
 * a retry that then succeeds is counted as a possible duplicate. A refused envelope never reaches the
 * message, although nodemailer drains the message stream into nothing then.
 */
describe.each([
  ['composed by the mailer (a request id)', () => randomUUID()],
  ['built by MailComposer (no request id)', () => undefined],
])('mailer: the body-sent mark of a failed send, for a mail %s', (_story, requestId) => {
  let smtp: SmtpTestServer;
  let transport: MailTransport;

  beforeAll(async () => {
    smtp = await startSmtpTestServer();
    const config = parseMailerConfig({
      SMTP_HOST: smtp.host,
      SMTP_PORT: String(smtp.port),
      SMTP_TIMEOUT_MS: '1000',
      SMTP_POOL_SIZE: '1',
    });
    transport = createSmtpTransport({ config, logger });
  });
  afterEach(() => smtp.setFault({ mode: 'healthy' }));
  afterAll(async () => {
    await transport.close();
    await smtp.close();
  });

  it('when the recipient is refused (550), then the failure is not marked afterBody', async () => {
    await smtp.setFault({ mode: 'reject', code: 550 });
    const err = await failure(transport.send(mail(requestId())));
    expect(err.code).toBe('EENVELOPE');
    expect(err.afterBody).toBeUndefined();
  });

  it('when MAIL FROM is refused (451), then the failure is not marked afterBody', async () => {
    await smtp.setFault({ mode: 'transient', code: 451 });
    const err = await failure(transport.send(mail(requestId())));
    expect(err.afterBody).toBeUndefined();
  });

  it('when the answer to the message is lost, then the failure is marked afterBody', async () => {
    await smtp.setFault({ mode: 'lose-ack' });
    const err = await failure(transport.send(mail(requestId())));
    expect(err.afterBody).toBe(true);
  });
});
