import pino from 'pino';

export type Logger = pino.Logger;

/**
 * Paths whose values never reach a log line, wherever they appear in a logged object. The SMTP
 * password and the JWT secret are never logged on purpose; this is the net under that rule.
 */
export const REDACTED_PATHS = [
  'password',
  '*.password',
  'pass',
  '*.pass',
  'auth.pass',
  '*.auth.pass',
  'secret',
  '*.secret',
  'JWT_SECRET',
  '*.JWT_SECRET',
  'SMTP_PASSWORD',
  '*.SMTP_PASSWORD',
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'access_token',
  '*.access_token',
  'refresh_token',
  '*.refresh_token',
  'confirmation_code',
  '*.confirmation_code',
  'vars.code',
  '*.vars.code',
  'payload.vars.code',
];

/** A structured JSON logger: one line per event, `service` on every line, secrets redacted. */
export function createLogger(opts: { service: string; level?: string; destination?: pino.DestinationStream }): Logger {
  return pino(
    {
      level: opts.level ?? 'info',
      base: { service: opts.service },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: pino.stdSerializers.err },
    },
    opts.destination,
  );
}
