import { randomUUID } from 'node:crypto';
import { smtpTransportSuite, testMail } from './support/smtp-transport-suite';

const mail = (requestId?: string) => testMail('mark', requestId);
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
  const suite = smtpTransportSuite({ SMTP_TIMEOUT_MS: '1000' });
  afterEach(() => suite.smtp.setFault({ mode: 'healthy' }));

  it('when the recipient is refused (550), then the failure is not marked afterBody', async () => {
    await suite.smtp.setFault({ mode: 'reject', code: 550 });
    const err = await failure(suite.transport.send(mail(requestId())));
    expect(err.code).toBe('EENVELOPE');
    expect(err.afterBody).toBeUndefined();
  });

  it('when MAIL FROM is refused (451), then the failure is not marked afterBody', async () => {
    await suite.smtp.setFault({ mode: 'transient', code: 451 });
    const err = await failure(suite.transport.send(mail(requestId())));
    expect(err.afterBody).toBeUndefined();
  });

  it('when the answer to the message is lost, then the failure is marked afterBody', async () => {
    await suite.smtp.setFault({ mode: 'lose-ack' });
    const err = await failure(suite.transport.send(mail(requestId())));
    expect(err.afterBody).toBe(true);
  });
});
