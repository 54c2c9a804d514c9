import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { Env, RawCheck } from './config';

/**
 * The confirmation code travels sealed: accounts encrypts it with AES-256-GCM under MAIL_PAYLOAD_KEY
 * before it enters the outbox, and only the mailer opens it, when it renders the mail. The outbox row,
 * `mail.requests`, the mailer's inbox row and the DLQ record carry the sealed form only.
 *
 * Sealed form: `v1.<key id>.<iv>.<ciphertext+tag>` (base64url). The key id (8 hex digits of a SHA-256 of
 * the key) lets keys rotate: the mailer also opens values sealed under MAIL_PAYLOAD_KEYS (old keys).
 * The additional authenticated data binds a value to its request (`request_id`): a sealed code copied
 * into another request does not open.
 */

export const SEALED_PATTERN = /^v1\.[0-9a-f]{8}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]{22,400}$/;

export type PayloadKeyring = { currentId: string; keys: ReadonlyMap<string, Buffer> };

export class PayloadKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PayloadKeyError';
  }
}

/** A 32-byte key from base64, base64url or hex text; undefined when it is not one. */
export function decodePayloadKey(text: string): Buffer | undefined {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return Buffer.from(trimmed, 'hex');
  if (!/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(trimmed)) return undefined;
  const key = Buffer.from(trimmed.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  return key.length === 32 ? key : undefined;
}

export const payloadKeyId = (key: Buffer): string =>
  createHash('sha256').update('mail-payload-key:').update(key).digest('hex').slice(0, 8);

/** A fresh key as base64 (what `npm start` hands to accounts and mailer, and what operators generate). */
export const generatePayloadKey = (): string => randomBytes(32).toString('base64');

export function createKeyring(current: Buffer, old: Buffer[] = []): PayloadKeyring {
  const keys = new Map<string, Buffer>();
  for (const key of [current, ...old]) keys.set(payloadKeyId(key), key);
  return { currentId: payloadKeyId(current), keys };
}

const b64url = (b: Buffer) => b.toString('base64url');

export function sealPayloadValue(ring: PayloadKeyring, plaintext: string, aad: string): string {
  const key = ring.keys.get(ring.currentId) as Buffer;
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
  return `v1.${ring.currentId}.${b64url(iv)}.${b64url(ct)}`;
}

/** Opens a sealed value; PayloadKeyError when the key id is unknown or the value was altered. */
export function openPayloadValue(ring: PayloadKeyring, sealed: string, aad: string): string {
  const [version, kid, ivText, ctText] = sealed.split('.');
  if (version !== 'v1' || !kid || !ivText || !ctText || !SEALED_PATTERN.test(sealed))
    throw new PayloadKeyError('not a sealed v1 value');
  const key = ring.keys.get(kid);
  if (!key) throw new PayloadKeyError(`sealed under unknown key id ${kid} (set MAIL_PAYLOAD_KEY / MAIL_PAYLOAD_KEYS)`);
  const ct = Buffer.from(ctText, 'base64url');
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(ivText, 'base64url'));
    decipher.setAAD(Buffer.from(aad, 'utf8'));
    decipher.setAuthTag(ct.subarray(ct.length - 16));
    return Buffer.concat([decipher.update(ct.subarray(0, ct.length - 16)), decipher.final()]).toString('utf8');
  } catch {
    throw new PayloadKeyError(`sealed value under key id ${kid} does not authenticate`);
  }
}

const keyText = z
  .string()
  .refine((v) => decodePayloadKey(v) !== undefined, 'must be 32 bytes, base64 or hex (openssl rand -base64 32)');

/** MAIL_PAYLOAD_KEY (current key) and MAIL_PAYLOAD_KEYS (older keys, comma-separated) for a config schema. */
export const payloadKeyEnv = () => ({
  MAIL_PAYLOAD_KEY: keyText.optional(),
  MAIL_PAYLOAD_KEYS: z
    .string()
    .optional()
    .refine(
      (v) => v === undefined || v.split(',').every((k) => decodePayloadKey(k) !== undefined),
      'must be comma-separated 32-byte keys, base64 or hex',
    ),
});

export const requirePayloadKeyInProduction: RawCheck = (env: Env) =>
  env.NODE_ENV === 'production' && env.MAIL_PAYLOAD_KEY === undefined
    ? { variable: 'MAIL_PAYLOAD_KEY', message: 'is required when NODE_ENV=production' }
    : undefined;

/**
 * The keyring of a parsed config. Without MAIL_PAYLOAD_KEY (development only: production refuses to
 * start) a random per-process key: accounts and mailer started separately then cannot read each
 * other's codes — `npm start` hands both one generated key.
 */
export function keyringFromConfig(
  config: { MAIL_PAYLOAD_KEY?: string | undefined; MAIL_PAYLOAD_KEYS?: string | undefined },
  onRandom: () => void,
): PayloadKeyring {
  const old = (config.MAIL_PAYLOAD_KEYS ?? '')
    .split(',')
    .filter(Boolean)
    .map((k) => decodePayloadKey(k) as Buffer);
  if (config.MAIL_PAYLOAD_KEY === undefined) {
    onRandom();
    return createKeyring(randomBytes(32), old);
  }
  return createKeyring(decodePayloadKey(config.MAIL_PAYLOAD_KEY) as Buffer, old);
}
