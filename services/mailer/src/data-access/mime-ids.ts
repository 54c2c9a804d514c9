import { randomBytes } from 'node:crypto';

/** A request id that may stand as a msg-id's left part as it is (the intake only admits UUIDs). */
const ID_LEFT = /^[A-Za-z0-9-]{1,64}$/;
/** A domain that may stand as a msg-id's right part as it is. */
const ID_RIGHT = /^[A-Za-z0-9.-]{1,253}$/;

/**
 * The Message-ID of a mail request: `<request id@sender's domain>`, the same on every attempt and on
 * every provider. The mail a lost SMTP answer made us send twice (a possible duplicate, on a retry or
 * through the fallback) carries the same Message-ID both times, so mail stores and clients that fold
 * duplicates by Message-ID show it once; and nodemailer draws no random bytes for it (five calls per
 * mail). A DLQ replay is an operator's deliberate new delivery: its N-th replay is `<request id.N@…>`,
 * so a store that kept an earlier copy (in spam, deleted) does not fold the replay away. Undefined
 * (nodemailer generates a random one, as before) when either part is not plain.
 */
export function messageIdFor(requestId: string | undefined, senderAddress: string, generation = 0): string | undefined {
  const domain = senderAddress.slice(senderAddress.lastIndexOf('@') + 1);
  if (requestId === undefined || !ID_LEFT.test(requestId) || !ID_RIGHT.test(domain)) return undefined;
  if (!Number.isSafeInteger(generation) || generation < 0) return undefined;
  return `<${requestId}${generation > 0 ? `.${generation}` : ''}@${domain}>`;
}

/**
 * Multipart boundaries: 16 hex characters from the CSPRNG per mail, as nodemailer draws them
 * (`randomBytes(8)` per MIME node, three for our text + HTML mail), but taken from one draw per
 * `perDraw` mails. The boundary stays unpredictable to whoever writes content into a mail.
 */
export function createBoundaryPool(perDraw = 256): () => string {
  let pool = Buffer.alloc(0);
  let at = 0;
  return () => {
    if (at >= pool.length) {
      pool = randomBytes(8 * perDraw);
      at = 0;
    }
    at += 8;
    return pool.toString('hex', at - 8, at);
  };
}
