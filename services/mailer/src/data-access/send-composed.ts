import { PassThrough } from 'node:stream';
import type { ComposedMail } from './mime-message';

/** What nodemailer's SMTP transports (pool and one-off) call back with: the part the mailer reads. */
export type SentInfo = { messageId: string; response?: string };

/** The part of nodemailer's MailMessage that its SMTP transports read (smtp-pool, smtp-transport). */
type TransportMail = {
  data: Record<string, never>;
  message: {
    getEnvelope: () => { from: string; to: string[] };
    messageId: () => string;
    getHeader: (key: string) => string | undefined;
    createReadStream: () => PassThrough;
  };
};

/**
 * A composed message (mime-message.ts) goes to nodemailer's SMTP transport itself, as nodemailer's Mail
 * hands it a mail after MailComposer: `mail.message` gives the envelope, the Message-ID and the message
 * stream; `mail.data` the options the transport reads (none set here: no DSN, no REQUIRETLS, no per-mail
 * auth). Mail's compile step — MailComposer on a raw message and a random base boundary — was ~6 % of the
 * mailer's busy time in a burst and adds nothing to a finished message. The stream is one chunk (one
 * write); its end marks the body sent, which `failedBeforeBody` corrects for a failed envelope (nodemailer
 * then drains the stream into nothing).
 */
export function sendComposed(
  transporter: { transporter: { send: unknown } },
  mail: ComposedMail,
  progress: { bodySent: boolean },
): Promise<SentInfo> {
  const message: TransportMail['message'] = {
    // A fresh object per call: the transport adds its DSN options to the one it gets.
    getEnvelope: () => ({ from: mail.envelope.from, to: [...mail.envelope.to] }),
    messageId: () => mail.messageId,
    getHeader: (key) => (key.toLowerCase() === 'message-id' ? mail.messageId : undefined),
    createReadStream: () => {
      const stream = new PassThrough();
      stream.once('end', () => {
        progress.bodySent = true;
      });
      stream.end(mail.message);
      return stream;
    },
  };
  const target = transporter.transporter;
  // nodemailer types send() with its whole MailMessage; the transports read only TransportMail's part.
  // A closed pool would take it and never call back: the transport sends nothing once closed, and a reset
  // closes a pool only after the sends that took it have reached it (synchronously, here).
  const send = (target.send as (m: TransportMail, cb: (err: Error | null, info: SentInfo) => void) => void).bind(
    target,
  );
  return new Promise((resolve, reject) =>
    send({ data: {}, message }, (err, info) => (err ? reject(err) : resolve(info))),
  );
}

/**
 * Whether a failed send never reached the message: the envelope was refused (MAIL FROM, RCPT TO, or
 * DATA before its 354; REQUIRETLS). nodemailer then drains the message stream into a throwaway stream, so
 * the stream's end does not say the body went out; only a failure after the envelope may have left the
 * server holding the mail (the `afterBody` window).
 */
export function failedBeforeBody(err: object): boolean {
  const { code, command } = err as { code?: unknown; command?: unknown };
  return code === 'EENVELOPE' || code === 'EREQUIRETLS' || command === 'MAIL FROM' || command === 'RCPT TO';
}
