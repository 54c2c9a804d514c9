import type { SendMailOptions } from 'nodemailer';
import MailComposer from 'nodemailer/lib/mail-composer';
import MimeNode from 'nodemailer/lib/mime-node';
import { foldLines } from 'nodemailer/lib/mime-funcs';
import { encode as qpEncode, wrap as qpWrap } from 'nodemailer/lib/qp';
import { createBoundaryPool, messageIdFor } from './mime-ids';
import type { RenderedMail } from './rendered-mail';

/**
 * The message of a text + HTML mail as nodemailer's MailComposer writes it, byte for byte, without its
 * MIME tree: MailComposer builds a node per part, parses every header back out of strings and runs each
 * part through a chain of streams. That was ~175 µs of CPU per mail, a
 * fifth of the mailer's busy time in a burst (thirteenth round's profile). Here the headers that depend
 * only on MAIL_FROM are built once by MailComposer itself, and each mail is string work over
 * nodemailer's own encoders (quoted-printable, line folding) with its own choice of encoding per part.
 *
 * Only the plain shape is composed here — a plain ASCII recipient, a printable ASCII subject without
 * `"`, both parts non-empty, a given Message-ID, quoted-printable or 7bit parts; anything else (a part
 * base64 would encode, a subject needing encoded words) gets `undefined`, and the transport lets
 * MailComposer build it. `test/mime-message.test.ts` holds the two equal over names in many scripts.
 */
export type AlternativeMail = {
  to: string;
  subject: string;
  text: string;
  html: string;
  /** `<left@right>`, as messageIdFor makes it. */
  messageId: string;
  date: Date;
  /** The root's base boundary (16 hex characters from the boundary pool). */
  baseBoundary: string;
};

/**
 * A recipient nodemailer writes as it is but for its domain, which it lower-cases (recipientAddress):
 * no display name, no encoding, no punycode.
 */
const PLAIN_RECIPIENT = /^[A-Za-z0-9._+-]{1,64}@[A-Za-z0-9.-]{1,253}$/;
/** A subject MimeNode writes as it is: printable ASCII, no `"` (which makes it encode the whole subject). */
const PRINTABLE_ASCII = /^[\x21\x23-\x7e](?:[\x20\x21\x23-\x7e]*[\x21\x23-\x7e])?$/;
const MESSAGE_ID = /^<[A-Za-z0-9.-]+@[A-Za-z0-9.-]+>$/;
const BASE_BOUNDARY = /^[0-9a-f]{16}$/;
/**
 * A text part's transfer encoding, decided as MimeNode decides it (mime-funcs' isPlainText and
 * hasLongerLines(76), then quoted-printable when fewer UTF-16 units are outside Latin than ASCII letters
 * are in it), in one pass that allocates nothing: nodemailer's regular expressions built a match array
 * per letter. Undefined when MimeNode would choose base64, and over 128 KiB (where nodemailer stops looking
 * for long lines: left to it).
 */
function partEncoding(content: string): '7bit' | 'quoted-printable' | undefined {
  if (content.length > 128 * 1024) return undefined;
  let nonLatin = 0;
  let latin = 0;
  let line = 0;
  let longLine = false;
  for (let i = 0; i < content.length; i++) {
    const c = content.charCodeAt(i);
    // Where a regular expression's `^` (multiline) may start a line and its `.` stops.
    if (c === 0x0a || c === 0x0d || c === 0x2028 || c === 0x2029) line = 0;
    else if (++line > 76) longLine = true;
    if (c >= 0x80 || (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d)) nonLatin += 1;
    else if ((c | 0x20) >= 0x61 && (c | 0x20) <= 0x7a) latin += 1;
  }
  if (nonLatin === 0 && !longLine) return '7bit';
  return nonLatin < latin ? 'quoted-printable' : undefined;
}

function part(contentType: string, content: string): string | undefined {
  const encoding = partEncoding(content);
  if (encoding === undefined) return undefined;
  const body = encoding === '7bit' ? content : qpWrap(qpEncode(Buffer.from(content, 'utf8')), 76);
  return `Content-Type: ${contentType}; charset=utf-8\r\nContent-Transfer-Encoding: ${encoding}\r\n\r\n${body}`;
}

/** The header lines MailComposer writes for `from` (folded as it folds them), built once per sender. */
export function fromHeaderLines(from: string): string {
  const probe = new MailComposer({ from, text: 'x', messageId: '<probe@probe>', date: new Date(0) }).compile();
  const headers = probe.buildHeaders().split('\r\n');
  const at = headers.findIndex((line) => line.startsWith('From: '));
  if (at < 0) throw new Error('MailComposer wrote no From header for MAIL_FROM');
  let end = at + 1;
  while (end < headers.length && /^[ \t]/.test(headers[end] as string)) end += 1;
  return headers.slice(at, end).join('\r\n');
}

/**
 * The whole message (headers, text part, HTML part) as MailComposer would stream it for
 * `{ from, to, subject, text, html, messageId, date, baseBoundary }`, or undefined outside the plain shape.
 */
export function composeAlternative(fromLines: string, mail: AlternativeMail): Buffer | undefined {
  if (!PLAIN_RECIPIENT.test(mail.to) || !PRINTABLE_ASCII.test(mail.subject)) return undefined;
  if (!MESSAGE_ID.test(mail.messageId) || !BASE_BOUNDARY.test(mail.baseBoundary)) return undefined;
  if (mail.text === '' || mail.html === '' || Number.isNaN(mail.date.getTime())) return undefined;
  const text = part('text/plain', mail.text);
  const html = part('text/html', mail.html);
  if (text === undefined || html === undefined) return undefined;
  const boundary = `--_NmP-${mail.baseBoundary}-Part_1`;
  const head = [
    fromLines,
    foldLines(`To: ${recipientAddress(mail.to)}`, 76),
    foldLines(`Subject: ${mail.subject}`, 76),
    foldLines(`Message-ID: ${mail.messageId}`, 76),
    `Date: ${mail.date.toUTCString().replace(/GMT/, '+0000')}`,
    'MIME-Version: 1.0',
    foldLines(`Content-Type: multipart/alternative; boundary="${boundary}"`, 76),
  ].join('\r\n');
  const message = `${head}\r\n\r\n--${boundary}\r\n${text}\r\n--${boundary}\r\n${html}\r\n--${boundary}--\r\n`;
  return Buffer.from(message, 'utf8');
}

/** A recipient as MimeNode writes it, in the To header and the envelope: its domain lower-cased. */
function recipientAddress(to: string): string {
  const at = to.lastIndexOf('@');
  return `${to.slice(0, at)}@${to.slice(at + 1).toLowerCase()}`;
}

/** A message composed here, ready for nodemailer's SMTP transport (send-composed.ts). */
export type ComposedMail = { envelope: { from: string; to: string[] }; messageId: string; message: Buffer };

/**
 * How a rendered mail from `mailFrom` (envelope sender `from`) goes out: composed here when it has the
 * plain shape, else as sendMail's fields, which MailComposer builds the message from. The Message-ID
 * names the request (mime-ids.ts); the base boundary comes from a pool.
 */
export function createMailComposer(mailFrom: string, from: string) {
  const boundary = createBoundaryPool();
  const fromLines = fromHeaderLines(mailFrom);
  // The envelope sender as nodemailer writes it into MAIL FROM (its domain lower-cased, punycoded).
  const envelopeFrom = String(new MimeNode().setEnvelope({ from }).getEnvelope().from || from);
  return (mail: RenderedMail): { composed: ComposedMail } | { options: SendMailOptions } => {
    const messageId = messageIdFor(mail.requestId, from, mail.generation);
    const baseBoundary = boundary();
    if (messageId !== undefined) {
      const message = composeAlternative(fromLines, { ...mail, messageId, date: new Date(), baseBoundary });
      if (message !== undefined) {
        const envelope = { from: envelopeFrom, to: [recipientAddress(mail.to)] };
        return { composed: { envelope, messageId, message } };
      }
    }
    const fields = { from: mailFrom, to: mail.to, subject: mail.subject, text: mail.text, html: mail.html };
    // An explicit envelope: the recipients are exactly this one address, whatever the headers say.
    const envelope = { from, to: [mail.to] };
    return { options: { ...fields, envelope, messageId, baseBoundary } as SendMailOptions };
  };
}
