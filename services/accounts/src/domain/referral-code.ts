import { randomBytes } from 'node:crypto';

// Crockford-style base32 without I, L, O, U: no look-alike characters when a code is typed by hand.
const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** 10 characters of base32 = 50 random bits: unique in practice, and not guessable. */
export function generateReferralCode(): string {
  const bytes = randomBytes(10);
  let code = '';
  // 256 is a multiple of 32, so `byte % 32` is uniform.
  for (const byte of bytes) code += ALPHABET[byte % 32];
  return code;
}
