import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';

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

type CreateChild = (this: MimeNodeLike, contentType: unknown, options?: Record<string, unknown>) => unknown;
type MimeNodeLike = { rootNode?: { baseBoundary?: unknown }; createChild: CreateChild };

/**
 * A child node made by `createChild` without a `baseBoundary` takes its root's instead of drawing one.
 * nodemailer's MailComposer passes our pooled `baseBoundary` to the root node only, and creates the text
 * and HTML leaves with `createChild`, where each leaf drew `randomBytes(8)` for a base boundary nothing
 * reads: boundaries are `<prefix>-<ROOT's base>-Part_<node id>` (MimeNode._generateBoundary). Two CSPRNG
 * calls per mail, ~4 % of the mailer's CPU in a burst (twelfth round's profile). The mail's bytes do not
 * change. Returns false, changing nothing, when MimeNode has no `createChild` (another nodemailer).
 */
export function shareRootBoundary(
  proto: MimeNodeLike = (createRequire(__filename)('nodemailer/lib/mime-node') as { prototype: MimeNodeLike })
    .prototype,
): boolean {
  const original = proto.createChild;
  if (typeof original !== 'function') return false;
  if ((original as { sharesRootBoundary?: true }).sharesRootBoundary) return true;
  const withRoot = (node: MimeNodeLike, options: Record<string, unknown> | undefined) =>
    options?.baseBoundary !== undefined ? options : { ...options, baseBoundary: node.rootNode?.baseBoundary };
  const createChild: CreateChild = function (this: MimeNodeLike, contentType, options) {
    // createChild(options) is nodemailer's other form: the options object in the content type's place.
    if (!options && typeof contentType === 'object' && contentType !== null)
      return original.call(this, withRoot(this, contentType as Record<string, unknown>));
    return original.call(this, contentType, withRoot(this, options));
  };
  proto.createChild = Object.assign(createChild, { sharesRootBoundary: true as const });
  return true;
}
