import { confirmationCodeMatches, generateConfirmationCode, hashConfirmationCode } from './confirmation-code';
import { generateReferralCode } from './referral-code';

describe('confirmation codes', () => {
  test('are 6 digits and stored salted: the same code hashes differently twice, and only it matches', () => {
    const code = generateConfirmationCode();
    const a = hashConfirmationCode(code);
    const b = hashConfirmationCode(code);

    expect(code).toMatch(/^\d{6}$/);
    expect(a).not.toBe(b);
    expect(a).not.toContain(code);
    expect(confirmationCodeMatches(code, a)).toBe(true);
    expect(confirmationCodeMatches(code, b)).toBe(true);
    expect(confirmationCodeMatches(code === '000000' ? '000001' : '000000', a)).toBe(false);
    expect(confirmationCodeMatches(code, 'garbage')).toBe(false);
  });
});

describe('referral codes', () => {
  test('are 10 characters of unambiguous base32 and do not repeat', () => {
    const codes = new Set(Array.from({ length: 2000 }, generateReferralCode));

    expect(codes.size).toBe(2000);
    for (const code of codes) expect(code).toMatch(/^[0-9ABCDEFGHJKMNPQRSTVWXYZ]{10}$/);
  });
});
