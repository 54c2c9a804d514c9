import {
  createKeyring,
  decodePayloadKey,
  generatePayloadKey,
  openPayloadValue,
  PayloadKeyError,
  sealPayloadValue,
  SEALED_PATTERN,
} from './payload-crypto';

describe('mail payload sealing (AES-256-GCM)', () => {
  const key = decodePayloadKey(generatePayloadKey()) as Buffer;
  const ring = createKeyring(key);

  it('when a code is sealed, the sealed text carries the key id and never the code, and opens to the code', () => {
    const sealed = sealPayloadValue(ring, '123456', 'request-1');
    expect(sealed).toMatch(SEALED_PATTERN);
    expect(sealed.split('.')[1]).toBe(ring.currentId);
    expect(sealed).not.toContain('123456');
    expect(openPayloadValue(ring, sealed, 'request-1')).toBe('123456');
  });

  it('when the value is moved to another request or altered, it does not open', () => {
    const sealed = sealPayloadValue(ring, '123456', 'request-1');
    expect(() => openPayloadValue(ring, sealed, 'request-2')).toThrow(PayloadKeyError);
    const tampered = `${sealed.slice(0, -2)}${sealed.endsWith('AA') ? 'AB' : 'AA'}`;
    expect(() => openPayloadValue(ring, tampered, 'request-1')).toThrow(PayloadKeyError);
  });

  it('when keys rotate, values sealed under an old key still open with MAIL_PAYLOAD_KEYS, and not without it', () => {
    const next = decodePayloadKey(generatePayloadKey()) as Buffer;
    const sealedOld = sealPayloadValue(ring, '654321', 'r');
    expect(openPayloadValue(createKeyring(next, [key]), sealedOld, 'r')).toBe('654321');
    expect(() => openPayloadValue(createKeyring(next), sealedOld, 'r')).toThrow(/unknown key id/);
  });

  it('accepts 32-byte keys as base64, base64url or hex, and refuses anything else', () => {
    const raw = Buffer.alloc(32, 7);
    expect(decodePayloadKey(raw.toString('base64'))).toEqual(raw);
    expect(decodePayloadKey(raw.toString('base64url'))).toEqual(raw);
    expect(decodePayloadKey(raw.toString('hex'))).toEqual(raw);
    expect(decodePayloadKey(Buffer.alloc(16).toString('base64'))).toBeUndefined();
    expect(decodePayloadKey('not a key')).toBeUndefined();
  });
});
