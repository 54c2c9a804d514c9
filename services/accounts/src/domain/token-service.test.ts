import jwt from 'jsonwebtoken';
import { createTokenService } from './token-service';

const config = {
  secret: 'token-service-test-secret-at-least-32-bytes',
  issuer: 'iss',
  audience: 'aud',
  accessTtlS: 900,
  refreshTtlS: 3600,
};
const clock = { now: () => new Date() };

describe('token service with its secret held as a key object', () => {
  it(
    'when a token is issued, then a verifier holding the plain secret string accepts it (old and new instances ' +
      'agree)',
    () => {
      const token = createTokenService(config, clock).issueAccess('user-1');
      const payload = jwt.verify(token, config.secret, {
        algorithms: ['HS256'],
        issuer: 'iss',
        audience: 'aud',
      }) as jwt.JwtPayload;
      expect(payload.sub).toBe('user-1');
    },
  );

  it('when a token was signed with the plain secret string, then the service verifies it', () => {
    const token = jwt.sign({ typ: 'access' }, config.secret, {
      algorithm: 'HS256',
      issuer: 'iss',
      audience: 'aud',
      subject: 'user-2',
      jwtid: 'j',
      expiresIn: 60,
    });
    expect(createTokenService(config, clock).verifyAccess(token)).toEqual({ userId: 'user-2' });
  });

  it('when a token was signed with another secret, then it is rejected', () => {
    const token = createTokenService(
      { ...config, secret: 'another-secret-that-is-also-32-bytes-long' },
      clock,
    ).issueAccess('user-3');
    expect(() => createTokenService(config, clock).verifyAccess(token)).toThrow();
  });
});
