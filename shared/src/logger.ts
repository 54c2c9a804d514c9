import pino from 'pino';

export type Logger = pino.Logger;

/** Keys whose values never reach a log line, at the top level and nested up to MAX_REDACT_DEPTH deep. */
const SECRET_KEYS = [
  'password',
  'pass',
  'secret',
  'JWT_SECRET',
  'SMTP_PASSWORD',
  'KAFKA_SASL_PASSWORD',
  'MAIL_PAYLOAD_KEY',
  'MAIL_PAYLOAD_KEYS',
  'authorization',
  'access_token',
  'refresh_token',
  'confirmation_code',
  'vars.code',
];

/**
 * How deep a secret may sit inside a logged object and still be redacted. pino's `*` matches one
 * level only (`*.vars.code` misses `a.b.vars.code`), so each key is listed under every prefix of up to
 * this many wildcards.
 */
export const MAX_REDACT_DEPTH = 5;

/**
 * Paths whose values never reach a log line, wherever they appear in a logged object (to
 * MAX_REDACT_DEPTH). The SMTP password and the JWT secret are never logged on purpose; this is the
 * net under that rule.
 */
export const REDACTED_PATHS = SECRET_KEYS.flatMap((key) =>
  Array.from({ length: MAX_REDACT_DEPTH + 1 }, (_, depth) => `${'*.'.repeat(depth)}${key}`),
);

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
