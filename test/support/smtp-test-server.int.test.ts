import nodemailer from 'nodemailer';
import { startSmtpTestServer, type SmtpTestServer } from './smtp-test-server';

/** Each fault mode as a real SMTP client (nodemailer) sees it. */
describe('SMTP test server', () => {
  let smtp: SmtpTestServer;
  const send = (opts: { auth?: { user: string; pass: string }; timeoutMs?: number; to?: string } = {}) =>
    nodemailer
      .createTransport({
        host: smtp.host,
        port: smtp.port,
        secure: false,
        ignoreTLS: true,
        auth: opts.auth,
        connectionTimeout: opts.timeoutMs ?? 2_000,
        greetingTimeout: opts.timeoutMs ?? 2_000,
        socketTimeout: opts.timeoutMs ?? 2_000,
      })
      .sendMail({ from: 'a@example.test', to: opts.to ?? 'b@example.test', subject: 'Grüße ✓', text: 'hello 123456' });

  beforeEach(async () => {
    smtp = await startSmtpTestServer();
  });
  afterEach(async () => {
    await smtp.close();
  });

  it('when healthy, accepts and records the message with its decoded subject and counts the connection', async () => {
    const info = await send();
    expect(info.accepted).toEqual(['b@example.test']);
    expect(smtp.messages).toHaveLength(1);
    expect(smtp.messages[0]?.subject).toBe('Grüße ✓');
    expect(smtp.messages[0]?.text).toContain('123456');
    expect(smtp.connectionCount()).toBe(1);
  });

  it('when stalling after connect, the client hits its greeting timeout', async () => {
    await smtp.setFault({ mode: 'stall-connect' });
    await expect(send({ timeoutMs: 300 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(smtp.messages).toHaveLength(0);
    expect(smtp.connectionCount()).toBe(1);
  });

  it('when stalling after EHLO, the client hits its socket timeout', async () => {
    await smtp.setFault({ mode: 'stall-ehlo' });
    await expect(send({ timeoutMs: 300 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(smtp.messages).toHaveLength(0);
  });

  it('when refusing, the client gets ECONNREFUSED, and the server listens again on the same port after', async () => {
    const port = smtp.port;
    await smtp.setFault({ mode: 'refuse' });
    await expect(send()).rejects.toMatchObject({ code: 'ESOCKET' });
    await smtp.setFault({ mode: 'healthy' });
    expect(smtp.port).toBe(port);
    await send();
    expect(smtp.messages).toHaveLength(1);
  });

  it('when resetting, the client sees the connection dropped', async () => {
    await smtp.setFault({ mode: 'reset' });
    await expect(send()).rejects.toBeDefined();
    expect(smtp.connectionCount()).toBe(1);
  });

  it('when AUTH fails, the client gets EAUTH with 535', async () => {
    await smtp.close();
    smtp = await startSmtpTestServer({ auth: { user: 'u', pass: 'right' } });
    await send({ auth: { user: 'u', pass: 'right' } });
    await smtp.setFault({ mode: 'auth-fail' });
    await expect(send({ auth: { user: 'u', pass: 'right' } })).rejects.toMatchObject({
      code: 'EAUTH',
      responseCode: 535,
    });
    expect(smtp.authAttempts()).toBe(2);
    expect(smtp.messages).toHaveLength(1);
  });

  it.each([421, 451] as const)('when answering %d, the client gets that transient code', async (code) => {
    await smtp.setFault({ mode: 'transient', code });
    await expect(send()).rejects.toMatchObject({ responseCode: code });
    expect(smtp.messages).toHaveLength(0);
  });

  it('when rejecting the recipient, the client gets a permanent 550', async () => {
    await smtp.setFault({ mode: 'reject' });
    await expect(send()).rejects.toMatchObject({ responseCode: 550 });
    await smtp.setFault({ mode: 'healthy' });
    smtp.rejectRecipient('bad@example.test');
    await expect(send({ to: 'bad@example.test' })).rejects.toMatchObject({ responseCode: 550 });
    await send();
    expect(smtp.messages.map((m) => m.to)).toEqual([['b@example.test']]);
  });

  it('when dropping mid-DATA, the client sees the connection close and nothing is recorded', async () => {
    await smtp.setFault({ mode: 'drop-mid-data' });
    await expect(send()).rejects.toBeDefined();
    expect(smtp.messages).toHaveLength(0);
  });

  it('when losing the ack, the message is recorded but the client times out waiting for the 250', async () => {
    await smtp.setFault({ mode: 'lose-ack' });
    await expect(send({ timeoutMs: 300 })).rejects.toMatchObject({ code: 'ETIMEDOUT' });
    expect(smtp.messages).toHaveLength(1);
  });

  it('when slow, every reply is delayed but the message still arrives', async () => {
    await smtp.setFault({ mode: 'slow', delayMs: 40 });
    const started = Date.now();
    await send({ timeoutMs: 5_000 });
    // greeting, EHLO, MAIL, RCPT, DATA, end of data: at least six delayed replies
    expect(Date.now() - started).toBeGreaterThanOrEqual(6 * 40);
    expect(smtp.messages).toHaveLength(1);
  });
});

describe('SMTP test server, a pooled connection across a switch to stall', () => {
  it('stalls a connection that was opened while healthy, so the client times out on it', async () => {
    const smtp = await startSmtpTestServer();
    const transport = nodemailer.createTransport({
      host: smtp.host,
      port: smtp.port,
      secure: false,
      ignoreTLS: true,
      pool: true,
      maxConnections: 1,
      connectionTimeout: 300,
      greetingTimeout: 300,
      socketTimeout: 300,
    });
    try {
      await transport.sendMail({ from: 'a@example.test', to: 'b@example.test', subject: 'one', text: 'x' });
      await smtp.setFault({ mode: 'stall-connect' });
      await expect(
        transport.sendMail({ from: 'a@example.test', to: 'b@example.test', subject: 'two', text: 'x' }),
      ).rejects.toMatchObject({ code: 'ETIMEDOUT' });
      expect(smtp.messages).toHaveLength(1);
    } finally {
      transport.close();
      await smtp.close();
    }
  });
});
