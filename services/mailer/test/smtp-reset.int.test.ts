import { createLogger } from '@shared/logger';
import { startSmtpTestServer, type SmtpFault, type SmtpTestServer } from '../../../test/support/smtp-test-server';
import { waitFor } from '../../../test/support/wait-for';
import { parseMailerConfig } from '../src/config';
import { createSmtpTransport, type MailTransport } from '../src/data-access/mail-transport';
import { classifySmtpError } from '../src/domain/classify-smtp-error';

const logger = createLogger({ service: 'mailer-test', level: 'silent' });
const mail = () => ({
  to: `reset-${Date.now()}-${Math.random()}@example.test`,
  subject: 'hello',
  text: 'code 123456',
  html: '<p>code 123456</p>',
});

/*
 * The breaker resets a provider's connections when it opens (smtp-circuit.ts). A mail already in flight
 * on a stalled server used to keep its connection until its own SMTP_TIMEOUT_MS, and only then move on
 * to a fallback; the reset now cuts it, so it fails at once — `circuit_open` when nothing of it had been
 * sent, `connection` with the possible-duplicate mark when its whole body had.
 */
describe('mailer: resetting a provider’s connections cuts the mails in flight on them', () => {
  let smtp: SmtpTestServer;
  let transport: MailTransport;
  /** Messages the server had accepted when the current case began. */
  let received = 0;

  beforeAll(async () => {
    smtp = await startSmtpTestServer();
    const config = parseMailerConfig({
      SMTP_HOST: smtp.host,
      SMTP_PORT: String(smtp.port),
      SMTP_TIMEOUT_MS: '8000',
      SMTP_POOL_SIZE: '2',
    });
    transport = createSmtpTransport({ config, logger });
  });
  afterAll(async () => {
    await transport.close();
    await smtp.close();
  });

  it.each<[string, SmtpFault, Record<string, unknown>]>([
    ['before its greeting', { mode: 'stall-connect' }, { errorClass: 'circuit_open', mayHaveBeenAccepted: false }],
    [
      'after its greeting, EHLO unanswered',
      { mode: 'stall-ehlo' },
      { errorClass: 'circuit_open', mayHaveBeenAccepted: false },
    ],
    [
      'after the whole message went out, its reply lost',
      { mode: 'lose-ack' },
      { errorClass: 'connection', mayHaveBeenAccepted: true },
    ],
  ])(
    'when the server stalls %s and the connections are reset, then the waiting send fails now, and the next goes out',
    async (_story, fault, expected) => {
      // A fault applies to new connections: a fresh pool (no idle connection) makes the send meet it.
      transport.resetConnections();
      await smtp.setFault(fault);
      smtp.resetCounters();
      const waiting = transport.send(mail()).then(
        () => 'sent' as const,
        (err: unknown) => err,
      );
      await waitFor(async () => smtp.connectionCount() >= 1, { message: 'the send connected' });
      // lose-ack: wait until the message itself went through, so the cut comes after the body.
      if (fault.mode === 'lose-ack')
        await waitFor(async () => smtp.messages.length > received, { message: 'the body in' });

      transport.resetConnections();

      // Well inside SMTP_TIMEOUT_MS (8 s), after which the send would have failed anyway.
      const outcome = await Promise.race([waiting, new Promise((r) => setTimeout(() => r('still waiting'), 3_000))]);
      expect(outcome).toBeInstanceOf(Error);
      // circuit_open when nothing of it was sent: it waits for the breaker that opened, or moves on to a
      // fallback; connection, possibly accepted, when the server may have taken it.
      expect(classifySmtpError(outcome)).toMatchObject({ retriable: true, ...expected });

      await smtp.setFault({ mode: 'healthy' });
      const m = mail();
      await transport.send(m);
      expect(smtp.messages.at(-1)?.to).toEqual([m.to]);
      received = smtp.messages.length;
    },
  );
});
