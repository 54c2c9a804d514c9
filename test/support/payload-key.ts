import { createKeyring, decodePayloadKey, openPayloadValue, sealPayloadValue } from '../../shared/src/payload-crypto';

/**
 * The MAIL_PAYLOAD_KEY every test harness gives accounts and the mailer (they must share one to read
 * each other's sealed codes). A fixed test value: never a production key.
 */
export const TEST_MAIL_PAYLOAD_KEY = Buffer.alloc(32, 0x5a).toString('base64');

const ring = createKeyring(decodePayloadKey(TEST_MAIL_PAYLOAD_KEY) as Buffer);

/** Seals a plain 6-digit code as accounts does (tests that produce mail.requested themselves). */
export const sealTestCode = (code: string, requestId: string): string => sealPayloadValue(ring, code, requestId);

/** Opens a code sealed under TEST_MAIL_PAYLOAD_KEY (what the mailer would render). */
export const openTestCode = (sealed: string, requestId: string): string => openPayloadValue(ring, sealed, requestId);
