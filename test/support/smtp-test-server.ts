import net from 'node:net';
import { SMTPServer, type SMTPServerAuthentication, type SMTPServerSession } from 'smtp-server';
import { simpleParser } from 'mailparser';
import { selfSignedCert } from './tls-cert';

/**
 * How the server offers TLS: not at all, STARTTLS on the plain port, or implicit TLS (smtps). With
 * TLS the certificate is self-signed, made at test time; `caPem` is what a client must trust.
 */
export type SmtpTlsMode = 'none' | 'starttls' | 'implicit';

/**
 * A real SMTP server for tests (smtp-server behind a small TCP front) that records every message and
 * can be switched at run time into the failure modes the mailer must survive. The front counts every
 * TCP connection it accepts, so a test can prove that an open circuit breaker stops connection attempts.
 */
export type SmtpFault =
  | { mode: 'healthy' }
  /** TCP accepted, the 220 greeting never comes (greeting timeout). */
  | { mode: 'stall-connect' }
  /** Greets, then never answers EHLO/HELO (socket timeout). */
  | { mode: 'stall-ehlo' }
  /** Nothing listens: clients get ECONNREFUSED (these attempts cannot be counted). */
  | { mode: 'refuse' }
  /** Accepts, then resets the connection at once (ECONNRESET). */
  | { mode: 'reset' }
  /** Every AUTH is answered 535. */
  | { mode: 'auth-fail' }
  /** MAIL FROM is answered with a transient 421 or 451. */
  | { mode: 'transient'; code: 421 | 451 }
  /** RCPT TO is answered with a permanent 550 for every recipient. */
  | { mode: 'reject'; code?: 550 | 553 | 554 }
  /** The connection is cut while the client sends the message body. */
  | { mode: 'drop-mid-data' }
  /** Every server reply is delayed by delayMs. */
  | { mode: 'slow'; delayMs: number }
  /** The message is accepted (and recorded) but the final 250 never reaches the client: a lost ack. */
  | { mode: 'lose-ack' };

export type ReceivedMail = {
  from: string;
  to: string[];
  subject: string;
  text: string;
  html: string;
  headers: Map<string, unknown>;
  messageId: string | undefined;
  raw: string;
  receivedAt: Date;
};

export type SmtpTestServer = {
  host: string;
  port: number;
  /** Messages accepted (250 after DATA), in order. */
  messages: ReceivedMail[];
  /** TCP connections accepted by the front since start (or the last resetCounters). */
  connectionCount: () => number;
  /** AUTH attempts seen. */
  authAttempts: () => number;
  /** AUTH commands the front saw in clear text (before any TLS) — must stay 0 for a TLS-requiring client. */
  plaintextAuthCommands: () => number;
  /** The PEM certificate to trust (SMTP_TLS_CA) when the server speaks TLS. */
  caPem: string | undefined;
  tls: SmtpTlsMode;
  setFault: (fault: SmtpFault) => Promise<void>;
  fault: () => SmtpFault;
  /** Recipients answered 550 whatever the mode (a bad address among good ones). */
  rejectRecipient: (address: string) => void;
  /** What clients wrote before any TLS, chunk by chunk as the front read it (the last 200). */
  clientChunks: () => string[];
  resetCounters: () => void;
  close: () => Promise<void>;
};

export async function startSmtpTestServer(
  opts: {
    port?: number;
    auth?: { user: string; pass: string };
    /** Default: starttls with auth, else none. */ tls?: SmtpTlsMode;
    /** Advertise PIPELINING after EHLO (default true, as smtp-server does). */
    pipelining?: boolean;
  } = {},
): Promise<SmtpTestServer> {
  let fault: SmtpFault = { mode: 'healthy' };
  let connections = 0;
  let auths = 0;
  let plainAuths = 0;
  const tlsMode: SmtpTlsMode = opts.tls ?? (opts.auth ? 'starttls' : 'none');
  const cert = tlsMode === 'none' ? undefined : selfSignedCert();
  const disabled = [...(tlsMode === 'starttls' ? [] : ['STARTTLS']), ...(opts.auth ? [] : ['AUTH'])];
  const messages: ReceivedMail[] = [];
  const rejected = new Set<string>();
  const sockets = new Set<net.Socket>();
  const clientWrites: string[] = [];

  const backend = new SMTPServer({
    authOptional: !opts.auth,
    disabledCommands: disabled,
    hidePIPELINING: opts.pipelining === false,
    // A server without TLS still takes AUTH in clear: the test that a TLS-requiring client never sends it.
    allowInsecureAuth: true,
    secure: tlsMode === 'implicit',
    ...(cert ? { key: cert.key, cert: cert.cert } : {}),
    logger: false,
    size: 10 * 1024 * 1024,
    onAuth(auth: SMTPServerAuthentication, _session: SMTPServerSession, callback) {
      auths += 1;
      if (
        fault.mode === 'auth-fail' ||
        !opts.auth ||
        auth.username !== opts.auth.user ||
        auth.password !== opts.auth.pass
      ) {
        const err = Object.assign(new Error('5.7.8 Authentication credentials invalid'), { responseCode: 535 });
        callback(err);
        return;
      }
      callback(null, { user: auth.username });
    },
    onMailFrom(_address, _session, callback) {
      if (fault.mode === 'transient') {
        callback(
          Object.assign(
            new Error(fault.code === 421 ? '4.3.2 Service not available, try later' : '4.3.0 Temporary local problem'),
            { responseCode: fault.code },
          ),
        );
        return;
      }
      callback();
    },
    onRcptTo(address, _session, callback) {
      if (fault.mode === 'reject' || rejected.has(address.address.toLowerCase())) {
        const code = fault.mode === 'reject' ? (fault.code ?? 550) : 550;
        callback(Object.assign(new Error('5.1.1 Recipient address rejected: user unknown'), { responseCode: code }));
        return;
      }
      callback();
    },
    onData(stream, session, callback) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const raw = Buffer.concat(chunks).toString('utf8');
        simpleParser(raw)
          .then((parsed) => {
            messages.push({
              from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '',
              to: session.envelope.rcptTo.map((r) => r.address),
              subject: parsed.subject ?? '',
              text: parsed.text ?? '',
              html: typeof parsed.html === 'string' ? parsed.html : '',
              headers: parsed.headers,
              messageId: parsed.messageId,
              raw,
              receivedAt: new Date(),
            });
            callback();
          })
          .catch((err: Error) => callback(err));
      });
    },
  });
  // A client that resets its connection (the front end below dropping a refused or stalled client) makes
  // smtp-server emit 'error'; unhandled, it would end the process hosting the server (a chaos run).
  backend.on('error', () => undefined);
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', () => resolve()));
  const backendPort = (backend.server.address() as net.AddressInfo).port;

  const handle = (client: net.Socket): void => {
    connections += 1;
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    client.on('error', () => undefined);
    const mode = fault;
    switch (mode.mode) {
      case 'stall-connect':
        return; // hold the socket, say nothing
      case 'reset':
        client.resetAndDestroy();
        return;
      case 'stall-ehlo':
        client.write('220 smtp-test ESMTP ready\r\n');
        return; // read EHLO, never answer
      default:
        break;
    }
    const upstream = net.connect(backendPort, '127.0.0.1');
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());

    let inData = false;
    let dataBytes = 0;
    // A connection opened before a switch to a stall mode stalls too, as a real hung server's would:
    // nothing more passes in either direction, so the client runs into its socket timeout.
    const stalled = () => fault.mode === 'stall-connect' || fault.mode === 'stall-ehlo';
    let bodyDone = false;
    let tlsStarted = tlsMode === 'implicit';
    client.on('data', (chunk: Buffer) => {
      if (stalled()) return;
      if (!tlsStarted) {
        const text = chunk.toString('latin1');
        clientWrites.push(text);
        if (clientWrites.length > 200) clientWrites.shift();
        if (/^AUTH\b/im.test(text)) plainAuths += 1;
        if (/^STARTTLS\r?\n/im.test(text)) tlsStarted = true;
      }
      if (fault.mode === 'lose-ack' && /\r\n\.\r\n$/.test(chunk.toString('latin1'))) bodyDone = true;
      if (mode.mode === 'drop-mid-data') {
        if (inData) {
          dataBytes += chunk.length;
          // Cut the connection after part of the body: the client sees the socket close mid-DATA.
          client.destroy();
          upstream.destroy();
          return;
        }
        if (/^DATA\r?\n/im.test(chunk.toString('latin1'))) inData = true;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => {
      if (stalled() || bodyDone) return;
      if (mode.mode === 'slow') {
        setTimeout(() => {
          if (!client.destroyed) client.write(chunk);
        }, mode.delayMs);
      } else {
        client.write(chunk);
      }
    });
    void dataBytes;
  };

  let front: net.Server | undefined;
  let port = opts.port ?? 0;
  const listenFront = async (): Promise<void> => {
    const server = net.createServer(handle);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    port = (server.address() as net.AddressInfo).port;
    front = server;
  };
  const closeFront = async (): Promise<void> => {
    const server = front;
    front = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  await listenFront();

  return {
    host: '127.0.0.1',
    get port() {
      return port;
    },
    messages,
    connectionCount: () => connections,
    authAttempts: () => auths,
    plaintextAuthCommands: () => plainAuths,
    caPem: cert?.cert,
    tls: tlsMode,
    fault: () => fault,
    rejectRecipient: (address) => rejected.add(address.toLowerCase()),
    clientChunks: () => [...clientWrites],
    resetCounters: () => {
      connections = 0;
      auths = 0;
      plainAuths = 0;
    },
    setFault: async (next) => {
      fault = next;
      // Connections held by a stall belong to the old mode: cut them so clients see the change.
      if (next.mode !== 'stall-connect' && next.mode !== 'stall-ehlo') {
        for (const s of sockets) s.destroy();
      }
      if (next.mode === 'refuse') await closeFront();
      else if (!front) await listenFront();
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await closeFront();
      await new Promise<void>((resolve) => backend.close(() => resolve()));
    },
  };
}
