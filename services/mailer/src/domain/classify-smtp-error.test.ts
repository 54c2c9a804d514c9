import { classifySmtpError } from './classify-smtp-error';

const err = (fields: Record<string, unknown>, message = 'boom') => Object.assign(new Error(message), fields);

describe('classifySmtpError', () => {
  it.each([
    ['a greeting timeout', err({ code: 'ETIMEDOUT' }, 'Greeting never received'), 'timeout', true],
    ['a connection timeout', err({ code: 'ETIMEDOUT' }, 'Connection timeout'), 'timeout', true],
    ['a socket inactivity timeout', err({ code: 'ESOCKET' }, 'Timeout'), 'timeout', true],
    [
      'a refused connection',
      err({ code: 'ESOCKET', errno: 'ECONNREFUSED' }, 'connect ECONNREFUSED 127.0.0.1:25'),
      'connection',
      true,
    ],
    ['a reset connection', err({ code: 'ECONNRESET' }), 'connection', true],
    [
      'a connection closed mid-DATA',
      err({ code: 'ECONNECTION' }, 'Connection closed unexpectedly'),
      'connection',
      true,
    ],
    ['an unknown host', err({ code: 'EDNS' }, 'getaddrinfo ENOTFOUND smtp.nowhere'), 'connection', true],
    ['an AUTH failure', err({ code: 'EAUTH', responseCode: 535 }, 'Invalid login: 535 5.7.8'), 'auth', true],
    ['a bare 535 reply', err({ responseCode: 535 }), 'auth', true],
    ['a 421 service not available', err({ code: 'EENVELOPE', responseCode: 421 }), 'unknown', true],
    ['a 451 local problem', err({ code: 'EENVELOPE', responseCode: 451 }), 'unknown', true],
    ['a 550 unknown recipient', err({ code: 'EENVELOPE', responseCode: 550 }), 'rejected', false],
    ['a 554 message refused after DATA', err({ code: 'EMESSAGE', responseCode: 554 }), 'rejected', false],
    ['nodemailer finding no recipient', err({ code: 'EENVELOPE' }, 'No recipients defined'), 'rejected', false],
    [
      'STARTTLS required but refused (502)',
      err({ code: 'ETLS', responseCode: 502 }, 'Error upgrading connection with STARTTLS'),
      'connection',
      true,
    ],
    [
      'a certificate the client does not trust',
      err({ code: 'ETLS' }, 'Error initiating TLS - self-signed certificate'),
      'connection',
      true,
    ],
    ['an open breaker', err({ code: 'EOPENBREAKER' }, 'Breaker is open'), 'circuit_open', true],
    [
      'a connection cut by that reset in the TLS handshake',
      err({ code: 'ETLS', connectionCut: true }, 'Connection closed unexpectedly'),
      'circuit_open',
      true,
    ],
    [
      'a pool entry dropped by that reset (no code)',
      err({ connectionCut: true }, 'Connection pool was closed'),
      'circuit_open',
      true,
    ],
    [
      'a connection cut by the reset of a breaker that opened, before the body',
      err({ code: 'ECONNECTION', connectionCut: true }, 'Connection closed unexpectedly'),
      'circuit_open',
      true,
    ],
    ['something unexpected', new Error('weird'), 'unknown', true],
    ['a thrown string', 'not an error', 'unknown', true],
  ])('classifies %s', (_story, thrown, errorClass, retriable) => {
    const failure = classifySmtpError(thrown);
    expect(failure.errorClass).toBe(errorClass);
    expect(failure.retriable).toBe(retriable);
  });

  it.each([
    ['a closed connection', err({ code: 'ECONNECTION', connectionCut: true, afterBody: true })],
    ['a pool entry dropped (no code)', err({ connectionCut: true, afterBody: true }, 'Connection pool was closed')],
  ])('a connection cut by a reset after the whole body went out is `connection`, possibly accepted: %s', (_s, e) => {
    expect(classifySmtpError(e)).toMatchObject({
      errorClass: 'connection',
      retriable: true,
      mayHaveBeenAccepted: true,
    });
  });

  it('keeps the raw server text as detail (for logs) and out of the message (which may reach events)', () => {
    const failure = classifySmtpError(err({ responseCode: 550 }, 'Recipient rejected: 550 5.1.1 user unknown'));
    expect(failure.detail).toContain('5.1.1 user unknown');
    expect(failure.message).not.toContain('5.1.1');
  });

  it('does not count a rejected recipient or an open breaker against the breaker, and counts outages', () => {
    expect(classifySmtpError(err({ responseCode: 550 })).countsAgainstBreaker).toBe(false);
    expect(classifySmtpError(err({ code: 'EOPENBREAKER' })).countsAgainstBreaker).toBe(false);
    expect(classifySmtpError(err({ code: 'ETIMEDOUT' })).countsAgainstBreaker).toBe(true);
    expect(classifySmtpError(err({ code: 'EAUTH' })).countsAgainstBreaker).toBe(true);
  });
});
