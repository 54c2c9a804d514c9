import net from 'node:net';
import tls from 'node:tls';
import { createLogger } from '@shared/logger';
import { startSmtpTestServer, type SmtpTestServer, type SmtpTlsMode } from '../../../test/support/smtp-test-server';
import { parseMailerConfig } from '../src/config';
import { createFallbackTransports, createSmtpTransport, type MailTransport } from '../src/data-access/mail-transport';
import { classifySmtpError } from '../src/domain/classify-smtp-error';

const AUTH = { user: 'mailer', pass: 'S3cr3t-smtp-password' };
const logger = createLogger({ service: 'mailer-test', level: 'silent' });
const mail = (to = `tls-${Date.now()}-${Math.random()}@example.test`) => ({
  to,
  subject: 'hello',
  text: 'code 123456',
  html: '<p>code 123456</p>',
});

/** Every plain TCP socket on which setNoDelay(true) was called, by remote port. */
function noDelayPorts(spy: jest.SpyInstance): number[] {
  return spy.mock.calls.flatMap((args, i) => {
    const socket = spy.mock.contexts[i] as net.Socket;
    return args[0] === true && !(socket instanceof tls.TLSSocket) && socket.remotePort !== undefined
      ? [socket.remotePort]
      : [];
  });
}

describe('mailer: SMTP over TLS, and no-delay sockets (issue 14 item 4, issue 13)', () => {
  const servers: SmtpTestServer[] = [];
  const transports: MailTransport[] = [];
  let spy: jest.SpyInstance;

  const server = async (tlsMode: SmtpTlsMode, auth: boolean) => {
    const s = await startSmtpTestServer({ tls: tlsMode, ...(auth ? { auth: AUTH } : {}) });
    servers.push(s);
    return s;
  };
  const transport = (env: Record<string, string>) => {
    const config = parseMailerConfig({ SMTP_TIMEOUT_MS: '2000', SMTP_POOL_SIZE: '1', ...env });
    const t = createSmtpTransport({ config, logger });
    transports.push(t);
    return t;
  };

  beforeEach(() => {
    spy = jest.spyOn(net.Socket.prototype, 'setNoDelay');
  });
  afterEach(() => spy.mockRestore());
  afterAll(async () => {
    for (const t of transports) await t.close();
    for (const s of servers) await s.close();
  });

  it(
    'when the server offers STARTTLS with a certificate trusted through SMTP_TLS_CA, then the mail goes out, ' +
      'AUTH only inside TLS, on a no-delay socket',
    async () => {
      const smtp = await server('starttls', true);
      const t = transport({
        SMTP_HOST: smtp.host,
        SMTP_PORT: String(smtp.port),
        SMTP_USER: AUTH.user,
        SMTP_PASSWORD: AUTH.pass,
        SMTP_TLS_CA: smtp.caPem ?? '',
      });
      const m = mail();
      await t.send(m);
      expect(smtp.messages.map((x) => x.to)).toEqual([[m.to]]);
      expect(smtp.authAttempts()).toBe(1);
      expect(smtp.plaintextAuthCommands()).toBe(0);
      expect(noDelayPorts(spy)).toContain(smtp.port);
    },
  );

  it(
    'when the server does not offer STARTTLS and credentials are set, then the send fails as a connection ' +
      'error and AUTH is never sent',
    async () => {
      const smtp = await server('none', true);
      const t = transport({
        SMTP_HOST: smtp.host,
        SMTP_PORT: String(smtp.port),
        SMTP_USER: AUTH.user,
        SMTP_PASSWORD: AUTH.pass,
      });
      const error = await t.send(mail()).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeDefined();
      const failure = classifySmtpError(error);
      expect(failure.errorClass).toBe('connection');
      expect(failure.retriable).toBe(true);
      expect(smtp.authAttempts()).toBe(0);
      expect(smtp.plaintextAuthCommands()).toBe(0);
      expect(smtp.messages).toHaveLength(0);
    },
  );

  it(
    'when SMTP_REQUIRE_TLS=false is set explicitly against the same server, then AUTH does go in clear (what ' +
      'the default prevents)',
    async () => {
      const smtp = await server('none', true);
      const t = transport({
        SMTP_HOST: smtp.host,
        SMTP_PORT: String(smtp.port),
        SMTP_USER: AUTH.user,
        SMTP_PASSWORD: AUTH.pass,
        SMTP_REQUIRE_TLS: 'false',
      });
      await t.send(mail());
      expect(smtp.plaintextAuthCommands()).toBe(1);
      expect(smtp.messages).toHaveLength(1);
    },
  );

  it(
    'when the certificate is not trusted (no SMTP_TLS_CA), then the send fails as a connection error without ' + 'AUTH',
    async () => {
      const smtp = await server('starttls', true);
      const t = transport({
        SMTP_HOST: smtp.host,
        SMTP_PORT: String(smtp.port),
        SMTP_USER: AUTH.user,
        SMTP_PASSWORD: AUTH.pass,
      });
      const error = await t.send(mail()).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(classifySmtpError(error).errorClass).toBe('connection');
      expect(smtp.authAttempts()).toBe(0);
      expect(smtp.plaintextAuthCommands()).toBe(0);
    },
  );

  it(
    'when a fallback is an smtps:// URL with credentials, then it speaks implicit TLS, AUTHs inside it, on a ' +
      'no-delay socket',
    async () => {
      const primary = await server('none', false);
      const smtps = await server('implicit', true);
      const config = parseMailerConfig({
        SMTP_HOST: primary.host,
        SMTP_PORT: String(primary.port),
        SMTP_TLS_CA: smtps.caPem ?? '',
        SMTP_FALLBACK_URLS: `smtps://${AUTH.user}:${encodeURIComponent(AUTH.pass)}@127.0.0.1:${smtps.port}?name=secure-backup`,
      });
      const fallbacks = createFallbackTransports({ config, logger });
      transports.push(...fallbacks.map((f) => f.transport));
      expect(fallbacks.map((f) => f.label)).toEqual(['secure-backup']);
      const m = mail();
      await fallbacks[0]?.transport.send(m);
      expect(smtps.messages.map((x) => x.to)).toEqual([[m.to]]);
      expect(smtps.authAttempts()).toBe(1);
      expect(noDelayPorts(spy)).toContain(smtps.port);
    },
  );

  it(
    'when 50 mails go through one pooled plain connection, then that connection is a no-delay socket and every ' +
      'mail arrives',
    async () => {
      const smtp = await server('none', false);
      const t = transport({ SMTP_HOST: smtp.host, SMTP_PORT: String(smtp.port) });
      await Promise.all(Array.from({ length: 50 }, () => t.send(mail())));
      expect(smtp.messages).toHaveLength(50);
      expect(smtp.connectionCount()).toBe(1);
      expect(noDelayPorts(spy).filter((p) => p === smtp.port)).toHaveLength(1);
    },
  );

  it(
    'when a mail goes out on an open pooled connection, then it takes two socket writes (MAIL FROM, RCPT TO and ' +
      'DATA pipelined, then the message with its final dot): the pieces of one turn leave together',
    async () => {
      const smtp = await server('none', false);
      const t = transport({ SMTP_HOST: smtp.host, SMTP_PORT: String(smtp.port) });
      await t.send(mail());
      // What reaches the socket's handle: one _write per uncorked write, one _writev per corked batch.
      const socketWrites = [jest.spyOn(net.Socket.prototype, '_write'), jest.spyOn(net.Socket.prototype, '_writev')];
      try {
        await t.send(mail());
        const toServer = socketWrites.flatMap((spy) =>
          spy.mock.contexts.filter((socket) => (socket as net.Socket).remotePort === smtp.port),
        );
        // Before: each MIME chunk was a write of its own (twelve writes for this mail); then the message
        // was one write and the final dot another (five); then four, the envelope's three commands each
        // waiting for its reply (smtp-pipelining.ts sends them together).
        expect(toServer.length).toBe(2);
      } finally {
        for (const spy of socketWrites) spy.mockRestore();
      }
      expect(smtp.messages).toHaveLength(2);
      expect(smtp.messages[1]?.html).toContain('code 123456');
    },
  );
});
