import { randomUUID } from 'node:crypto';
import nodemailer from 'nodemailer';
import type SMTPTransport from 'nodemailer/lib/smtp-transport';
import type SMTPPool from 'nodemailer/lib/smtp-pool';
import type { Logger } from '@shared/logger';
import type { MailerConfig } from '../config';
import type { RenderedMail } from './rendered-mail';

export type SendResult = { messageId: string; response: string };

/** Where rendered mails go: SMTP in production, a log line in development. */
export type MailTransport = {
  send: (mail: RenderedMail) => Promise<SendResult>;
  /** Drops every pooled connection so nothing keeps talking to a server the breaker gave up on. */
  resetConnections: () => void;
  close: () => Promise<void>;
};

type SmtpSettings = Pick<
  MailerConfig,
  'SMTP_HOST' | 'SMTP_PORT' | 'SMTP_SECURE' | 'SMTP_USER' | 'SMTP_PASSWORD' | 'SMTP_TIMEOUT_MS' | 'SMTP_POOL_SIZE' | 'MAIL_FROM'
>;

/** The bare address of MAIL_FROM ("Name <a@b>" or "a@b"), for the SMTP envelope. */
function envelopeSender(from: string): string {
  return /<([^<>]+)>\s*$/.exec(from)?.[1] ?? from;
}

/**
 * nodemailer over SMTP. `pool: true` keeps up to SMTP_POOL_SIZE connections open between mails;
 * `pool: false` opens one connection per mail (the benchmark's baseline).
 */
export function createSmtpTransport(opts: { config: SmtpSettings; logger: Logger; pool?: boolean }): MailTransport {
  const { config } = opts;
  const log = opts.logger.child({ component: 'smtp-transport' });
  const pooled = opts.pool ?? true;
  const base = {
    host: config.SMTP_HOST,
    port: config.SMTP_PORT,
    secure: config.SMTP_SECURE,
    auth: config.SMTP_USER !== undefined ? { user: config.SMTP_USER, pass: config.SMTP_PASSWORD ?? '' } : undefined,
    connectionTimeout: config.SMTP_TIMEOUT_MS,
    greetingTimeout: config.SMTP_TIMEOUT_MS,
    socketTimeout: config.SMTP_TIMEOUT_MS,
    // nodemailer's own logger would print SMTP transcripts (AUTH included): never.
    logger: false,
    debug: false,
    disableFileAccess: true,
    disableUrlAccess: true,
  };
  const build = () =>
    pooled
      ? nodemailer.createTransport({ ...base, pool: true, maxConnections: config.SMTP_POOL_SIZE } as SMTPPool.Options)
      : nodemailer.createTransport({ ...base } as SMTPTransport.Options);
  const withBodyTracking = (t: ReturnType<typeof build>) => {
    // When the message stream the SMTP connection reads has ended, the whole body went into the DATA
    // command (the connection starts reading it only after the server's 354). From then on the server
    // may accept the mail even if its reply never reaches us (timeout, dropped connection): such a
    // failure is marked `afterBody` so that a later successful retry is counted as a possible
    // duplicate — the one window SMTP itself leaves open. ('end' fires when the stream was consumed,
    // unlike a transform's flush, which fires as soon as its input was buffered.)
    t.use('stream', (mail, done) => {
      const progress = (mail.data as { progress?: { bodySent: boolean } }).progress;
      if (progress) {
        const message = mail.message;
        const createReadStream = message.createReadStream.bind(message);
        message.createReadStream = (...args: Parameters<typeof message.createReadStream>) => {
          const stream = createReadStream(...args);
          stream.once('end', () => {
            progress.bodySent = true;
          });
          return stream;
        };
      }
      done();
    });
    return t;
  };
  let transporter = withBodyTracking(build());
  const from = envelopeSender(config.MAIL_FROM);

  return {
    send: async (mail) => {
      const progress = { bodySent: false };
      const info = (await transporter
        .sendMail({
        from: config.MAIL_FROM,
        to: mail.to,
        // An explicit envelope: the recipients are exactly this one address, whatever the headers say.
        envelope: { from, to: [mail.to] },
        subject: mail.subject,
        text: mail.text,
        html: mail.html,
          progress,
        } as nodemailer.SendMailOptions)
        .catch((err: unknown) => {
          if (progress.bodySent && err && typeof err === 'object') Object.assign(err, { afterBody: true });
          throw err;
        })) as { messageId: string; response?: string };
      return { messageId: info.messageId, response: info.response ?? '' };
    },
    resetConnections: () => {
      const old = transporter;
      transporter = withBodyTracking(build());
      old.close();
      log.info('SMTP connections closed');
    },
    close: async () => {
      transporter.close();
    },
  };
}

/** MAIL_TRANSPORT=console: each mail is one JSON log line, code included (development only). */
export function createConsoleTransport(opts: { logger: Logger }): MailTransport {
  const log = opts.logger.child({ component: 'console-transport' });
  return {
    send: async (mail) => {
      const messageId = `<${randomUUID()}@console.mailer>`;
      log.info({ console_mail: { message_id: messageId, to: mail.to, subject: mail.subject, text: mail.text } }, 'mail printed instead of sent (MAIL_TRANSPORT=console)');
      return { messageId, response: '250 printed' };
    },
    resetConnections: () => undefined,
    close: async () => undefined,
  };
}

export function createMailTransport(opts: { config: SmtpSettings & Pick<MailerConfig, 'MAIL_TRANSPORT'>; logger: Logger }): MailTransport {
  return opts.config.MAIL_TRANSPORT === 'console' ? createConsoleTransport(opts) : createSmtpTransport(opts);
}
