import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

/** A fresh 6-digit confirmation code from the CSPRNG (leading zeros kept). */
export function generateConfirmationCode(): string {
  return String(randomInt(0, 1_000_000)).padStart(6, '0');
}

/**
 * `salt:sha256(salt || code)`. A per-request salt rather than an HMAC with the JWT secret: the secret
 * is random per process in development, and codes must survive a restart. The hash keeps codes out
 * of a casual read of the table; the attempt limit is what stops guessing.
 */
export function hashConfirmationCode(code: string): string {
  const salt = randomBytes(16).toString('hex');
  return `${salt}:${digest(salt, code)}`;
}

/** Constant-time comparison of a submitted code with a stored hash. */
export function confirmationCodeMatches(code: string, stored: string): boolean {
  const [salt, expected] = stored.split(':');
  if (!salt || !expected) return false;
  const a = Buffer.from(digest(salt, code), 'hex');
  const b = Buffer.from(expected, 'hex');
  return a.length === b.length && timingSafeEqual(a, b);
}

function digest(salt: string, code: string): string {
  return createHash('sha256').update(salt).update(code).digest('hex');
}
