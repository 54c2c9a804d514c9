import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import { PassThrough, type Readable } from 'node:stream';
import { rootCertificates } from 'node:tls';
import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import type SMTPPool from 'nodemailer/lib/smtp-pool';
import type { Logger } from '@shared/logger';
import type { MailerConfig } from '../config';
import type { RenderedMail } from './rendered-mail';
import { primaryProvider, smtpProviders, type SmtpProvider } from '../smtp-providers';
import { noDelaySocket } from './smtp-socket';
import { messageIdFor, shareRootBoundary } from './mime-ids';
import { applySmtpPipelining } from './smtp-pipelining';
import { createMailComposer } from './mime-message';
import { failedBeforeBody, sendComposed } from './send-composed';

export type SendResult = { messageId: string; response: string };

/** Where rendered mails go: SMTP in production, a log line in development. */
export type MailTransport = {
  send: (mail: RenderedMail) => Promise<SendResult>;
  /** Drops every pooled connection (the breaker gave up on the server); a mail in flight fails, `connectionCut`. */
  resetConnections: () => void;
  close: () => Promise<void>;
};

/** One provider's transport, named by its label. */
export type ProviderTransport = { label: string; transport: MailTransport };

type SmtpSettings = Pick<
  MailerConfig,
  | 'SMTP_HOST'
  | 'SMTP_PORT'
  | 'SMTP_SECURE'
  | 'SMTP_USER'
  | 'SMTP_PASSWORD'
  | 'SMTP_TIMEOUT_MS'
  | 'SMTP_POOL_SIZE'
  | 'MAIL_FROM'
> &
  Partial<Pick<MailerConfig, 'SMTP_REQUIRE_TLS' | 'SMTP_TLS_CA'>>;

/** SMTP_TLS_CA as PEM text: inline PEM, or the file it names. Added to the system's CAs. */
function tlsOptions(config: Pick<SmtpSettings, 'SMTP_TLS_CA'>): { ca?: string[]; minVersion: 'TLSv1.2' } {
  if (config.SMTP_TLS_CA === undefined) return { minVersion: 'TLSv1.2' };
  const pem = config.SMTP_TLS_CA.includes('-----BEGIN') ? config.SMTP_TLS_CA : readFileSync(config.SMTP_TLS_CA, 'utf8');
  return { ca: [...rootCertificates, pem], minVersion: 'TLSv1.2' };
}

/** The bare address of MAIL_FROM ("Name <a@b>" or "a@b"), for the SMTP envelope. */
function envelopeSender(from: string): string {
  return /<([^<>]+)>\s*$/.exec(from)?.[1] ?? from;
}

/** nodemailer SMTP options shared by the pooled and the one-connection-per-mail transport. */
function smtpOptions(config: SmtpSettings) {
  const provider = primaryProvider(config);
  return {
    host: provider.host,
    port: provider.port,
    secure: provider.secure,
    // STARTTLS mandatory: nodemailer fails the connection (ETLS) rather than AUTH or send in clear.
    requireTLS: !provider.secure && provider.requireTls,
    tls: tlsOptions(config),
    auth: provider.user !== undefined ? { user: provider.user, pass: provider.password ?? '' } : undefined,
    connectionTimeout: config.SMTP_TIMEOUT_MS,
    greetingTimeout: config.SMTP_TIMEOUT_MS,
    socketTimeout: config.SMTP_TIMEOUT_MS,
    // nodemailer's own logger would print SMTP transcripts (AUTH included): never.
    logger: false,
    debug: false,
    disableFileAccess: true,
    disableUrlAccess: true,
  };
}

type SmtpTransporter =
  nodemailer.Transporter<SMTPPool.SentMessageInfo> | nodemailer.Transporter<SMTPTransport.SentMessageInfo>;

/**
 * The message as ONE chunk. nodemailer pipes the MIME stream into the socket chunk by chunk, and with
 * TCP_NODELAY each chunk is a write of its own (eight for our text + HTML mail). Collected into one
 * Buffer (a mail is a few KiB) it is one write; the source is read at once, while the envelope's
 * round trips are still under way.
 */
function wholeMessage(source: Readable): Readable {
  const whole = new PassThrough();
  const chunks: Buffer[] = [];
  source.on('data', (chunk: Buffer | string) => chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk));
  source.once('end', () => whole.end(Buffer.concat(chunks)));
  source.once('error', (err: Error) => whole.destroy(err));
  return whole;
}

/**
 * For the mails MailComposer builds (composed ones go through send-composed.ts): sends each message as one
 * chunk and marks a failed send `afterBody` once the whole of it went into DATA.
 */
function withBodyTracking<T extends SmtpTransporter>(t: T): T {
  // When the message stream the SMTP connection reads has ended, the whole body went into the DATA
  // command (the connection reads it after the server's 354; after a refused envelope it drains it
  // into nothing, which failedBeforeBody tells apart). From then on the server
  // may accept the mail even if its reply never reaches us (timeout, dropped connection): such a
  // failure is marked `afterBody` so that a later successful retry is counted as a possible
  // duplicate — the one window SMTP itself leaves open. ('end' fires when the stream was consumed,
  // unlike a transform's flush, which fires as soon as its input was buffered.)
  t.use('stream', (mail, done) => {
    const progress = (mail.data as { progress?: { bodySent: boolean } }).progress;
    const message = mail.message;
    const createReadStream = message.createReadStream.bind(message);
    message.createReadStream = (...args: Parameters<typeof message.createReadStream>) => {
      const stream = wholeMessage(createReadStream(...args));
      if (progress)
        stream.once('end', () => {
          progress.bodySent = true;
        });
      return stream;
    };
    done();
  });
  return t;
}

/**
 * nodemailer over SMTP. `pool: true` keeps up to SMTP_POOL_SIZE connections open between mails;
 * `pool: false` opens one connection per mail (the benchmark's baseline).
 */
export function createSmtpTransport(opts: { config: SmtpSettings; logger: Logger; pool?: boolean }): MailTransport {
  const { config } = opts;
  const log = opts.logger.child({ component: 'smtp-transport' });
  if (!applySmtpPipelining()) log.warn('nodemailer internals changed: SMTP envelopes are not pipelined');
  if (!shareRootBoundary()) log.warn('nodemailer internals changed: each MIME part draws random bytes');
  const pooled = opts.pool ?? true;
  const base = smtpOptions(config);
  const build = () => {
    const sockets = new Set<net.Socket>();
    const options = { ...base, getSocket: noDelaySocket(sockets) };
    const t = pooled
      ? nodemailer.createTransport({
          ...options,
          pool: true,
          maxConnections: config.SMTP_POOL_SIZE,
        } as SMTPPool.Options)
      : nodemailer.createTransport(options as SMTPTransport.Options);
    return { transporter: withBodyTracking(t), sockets };
  };
  let current = build();
  let closed = false;
  const compose = createMailComposer(config.MAIL_FROM, envelopeSender(config.MAIL_FROM));

  return {
    send: async (mail) => {
      // nodemailer's pool takes a mail after close() and never answers it: fail it here instead.
      if (closed) throw new Error('SMTP transport closed');
      const progress = { bodySent: false };
      const pool = current;
      const how = compose(mail);
      const sending =
        'composed' in how
          ? sendComposed(pool.transporter, how.composed, progress)
          : pool.transporter.sendMail({ ...how.options, progress } as nodemailer.SendMailOptions);
      const info = (await sending.catch((err: unknown) => {
        if (err && typeof err === 'object') {
          if (progress.bodySent && !failedBeforeBody(err)) Object.assign(err, { afterBody: true });
          // Reset while this mail was on its way: its socket was cut, or the pool dropped it ("Connection
          // pool was closed", no code). `connectionCut` says so, whatever nodemailer made of it.
          if (pool !== current) Object.assign(err, { connectionCut: true });
        }
        throw err;
      })) as { messageId: string; response?: string };
      return { messageId: info.messageId, response: info.response ?? '' };
    },
    resetConnections: () => {
      const old = current;
      current = build();
      old.transporter.close();
      // nodemailer closes a busy connection only after its mail, which on a stalled server is one
      // SMTP_TIMEOUT_MS away: cut it, so that mail fails now (marked `connectionCut`, see send) and moves
      // on to a fallback. The pool's idle connections, which close() has just ended, go with them.
      const sockets = old.sockets.size;
      for (const socket of old.sockets) socket.destroy();
      log.info({ sockets_closed: sockets }, 'SMTP connections closed');
    },
    close: async () => {
      closed = true;
      current.transporter.close();
    },
  };
}

/** MAIL_TRANSPORT=console: each mail is one JSON log line, code included (development only). */
export function createConsoleTransport(opts: { logger: Logger }): MailTransport {
  const log = opts.logger.child({ component: 'console-transport' });
  return {
    send: async (mail) => {
      const messageId =
        messageIdFor(mail.requestId, 'mailer@console.mailer', mail.generation) ?? `<${randomUUID()}@console.mailer>`;
      log.info(
        { console_mail: { message_id: messageId, to: mail.to, subject: mail.subject, text: mail.text } },
        'mail printed instead of sent (MAIL_TRANSPORT=console)',
      );
      return { messageId, response: '250 printed' };
    },
    resetConnections: () => undefined,
    close: async () => undefined,
  };
}

export function createMailTransport(opts: {
  config: SmtpSettings & Pick<MailerConfig, 'MAIL_TRANSPORT'>;
  logger: Logger;
}): MailTransport {
  return opts.config.MAIL_TRANSPORT === 'console' ? createConsoleTransport(opts) : createSmtpTransport(opts);
}

/** The settings of one provider in the shape createSmtpTransport reads. */
function providerSettings(config: SmtpSettings, p: SmtpProvider): SmtpSettings {
  return {
    ...config,
    SMTP_HOST: p.host,
    SMTP_PORT: p.port,
    SMTP_SECURE: p.secure,
    SMTP_USER: p.user,
    SMTP_PASSWORD: p.password,
    SMTP_REQUIRE_TLS: p.requireTls,
  };
}

/**
 * The fallback providers of SMTP_FALLBACK_URLS, each with its own pool (none with MAIL_TRANSPORT=console).
 * The primary's transport is built by createMailTransport.
 */
export function createFallbackTransports(opts: {
  config: SmtpSettings & Partial<Pick<MailerConfig, 'MAIL_TRANSPORT' | 'SMTP_FALLBACK_URLS'>>;
  logger: Logger;
}): ProviderTransport[] {
  if (opts.config.MAIL_TRANSPORT === 'console') return [];
  return smtpProviders(opts.config)
    .slice(1)
    .map((p) => ({
      label: p.label,
      transport: createSmtpTransport({
        config: providerSettings(opts.config, p),
        logger: opts.logger.child({ provider: p.label }),
      }),
    }));
}
