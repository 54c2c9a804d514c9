import { errorMessage } from '@shared/errors';
import { SendFailure } from './send-failure';

const TIMEOUT_CODES = new Set(['ETIMEDOUT', 'ETIMEOUT', 'ESOCKETTIMEDOUT']);
// nodemailer reports socket trouble as ESOCKET/ECONNECTION (including "connection closed" in the
// middle of DATA); node reports the underlying errno.
const CONNECTION_CODES = new Set([
  'ECONNECTION',
  'ESOCKET',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EDNS',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETLS',
]);
const AUTH_REPLY_CODES = new Set([530, 534, 535, 538]);

/**
 * Maps whatever a send threw (nodemailer, node's net, opossum) to the contract's error class and
 * whether a retry can help. Pure: it reads only the error's own fields.
 *
 * Transient 4xx replies (421 service closing, 451 local problem, 452 storage) are `unknown` and
 * retried: the server answered, so it is not a connection failure, and the contract has no class of
 * its own for "try later". A permanent 5xx for this recipient or message is `rejected`: no retry.
 */
export function classifySmtpError(err: unknown): SendFailure {
  if (err instanceof SendFailure) return err;
  const detail = errorMessage(err);
  const fields = (err && typeof err === 'object' ? err : {}) as {
    code?: unknown;
    responseCode?: unknown;
    errno?: unknown;
  };
  const code = typeof fields.code === 'string' ? fields.code : undefined;
  const reply = typeof fields.responseCode === 'number' ? fields.responseCode : undefined;

  if (code === 'EOPENBREAKER') return new SendFailure('circuit_open', true, detail);
  // No reply after the whole body went out: the server may have taken the mail (see mail-transport).
  const afterBody = (fields as { afterBody?: unknown }).afterBody === true;
  // Cut by the reset of a breaker that opened meanwhile (mail-transport's resetConnections), whatever
  // nodemailer made of it (a closed socket, a dropped pool entry, a TLS handshake cut short).
  const cut = (fields as { connectionCut?: unknown }).connectionCut === true;
  // TLS could not be set up (SMTP_REQUIRE_TLS and no STARTTLS, a bad certificate): nothing was sent,
  // AUTH included. Checked before the reply code: the server's 5xx to STARTTLS is no verdict on the address.
  if (code === 'ETLS' && !cut) return new SendFailure('connection', true, detail);
  if (code === 'EAUTH' || (reply !== undefined && AUTH_REPLY_CODES.has(reply)))
    return new SendFailure('auth', true, detail);
  if (reply !== undefined && reply >= 500 && reply < 600) return new SendFailure('rejected', false, detail);
  if (reply !== undefined && reply >= 400 && reply < 500) return new SendFailure('unknown', true, detail);
  // Before the body went out nothing was sent: the mail waits for that breaker like any other, or moves
  // on. After it, the server may have taken the mail: a connection failure, possibly accepted.
  if (cut)
    return afterBody
      ? new SendFailure('connection', true, detail, true)
      : new SendFailure('circuit_open', true, detail);
  if ((code && TIMEOUT_CODES.has(code)) || /\btime(d)?\s?out\b/i.test(detail))
    return new SendFailure('timeout', true, detail, afterBody);
  if (code && CONNECTION_CODES.has(code)) return new SendFailure('connection', true, detail, afterBody);
  if (typeof fields.errno === 'string' && CONNECTION_CODES.has(fields.errno))
    return new SendFailure('connection', true, detail, afterBody);
  // nodemailer: no valid recipient left, or a message it refuses to build: retrying cannot help.
  if (code === 'EENVELOPE' || code === 'EMESSAGE') return new SendFailure('rejected', false, detail);
  return new SendFailure('unknown', true, detail);
}
