import { z } from 'zod';
import { payloadKeyEnv, requirePayloadKeyInProduction } from '@shared/payload-crypto';
import {
  commonEnv,
  envBool,
  envInt,
  envPort,
  loadConfigOrExit,
  parseEnv,
  type Env,
  type RawCheck,
} from '@shared/config';
import { parseFallbackUrls } from './smtp-providers';

const optionalBool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { errorMap: () => ({ message: 'must be true or false' }) })
  .transform((v) => v === 'true' || v === '1' || v === 'yes')
  .optional();

const schema = z
  .object({
    ...commonEnv(3002),
    /**
     * MAILER_DATABASE_URL: the mailer's own database (its inbox and outbox; migrations/mailer). Unset:
     * DATABASE_URL, so a one-box stack needs one PostgreSQL. The mailer never reads accounts' tables.
     */
    MAILER_DATABASE_URL: z
      .string()
      .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// URL')
      .optional(),
    /** SMTP_HOST / SMTP_PORT / SMTP_SECURE: the SMTP server (default: the dev catcher). */
    SMTP_HOST: z.string().default('127.0.0.1'),
    SMTP_PORT: envPort(1025),
    /** SMTP_SECURE: implicit TLS (port 465 style); false uses STARTTLS when the server offers it. */
    SMTP_SECURE: envBool(false),
    /** SMTP_USER / SMTP_PASSWORD: AUTH credentials; both or neither. Never logged. */
    SMTP_USER: z.string().optional(),
    SMTP_PASSWORD: z.string().optional(),
    /**
     * SMTP_FALLBACK_URLS: comma-separated SMTP URLs (`smtp://user:pass@host:port`, `smtps://...`,
     * `?name=label`) tried in order after the primary, each with its own pool and breaker.
     */
    SMTP_FALLBACK_URLS: z.string().optional(),
    /**
     * SMTP_REQUIRE_TLS: never AUTH or send without TLS; default true when SMTP_USER is set
     * (per fallback: its user).
     */
    SMTP_REQUIRE_TLS: optionalBool,
    /** SMTP_TLS_CA: a PEM file (or PEM text) of CA certificates to trust for every provider, besides the system's. */
    SMTP_TLS_CA: z.string().optional(),
    /** SMTP_TIMEOUT_MS: connection, greeting and socket timeout of one attempt. */
    SMTP_TIMEOUT_MS: envInt(10_000, 100, 600_000),
    /** SMTP_POOL_SIZE: pooled SMTP connections. */
    SMTP_POOL_SIZE: envInt(5, 1, 100),
    /** MAIL_FROM: the From address. */
    MAIL_FROM: z
      .string()
      .default('no-reply@localhost')
      .refine(
        (v) => /^[^\s@<>]+@[^\s@<>]+$/.test(v) || /^[^<>\r\n]*<[^\s@<>]+@[^\s@<>]+>$/.test(v),
        'must be an address or "Name <address>"',
      ),
    /** MAIL_TRANSPORT: smtp, or console to print mails instead (development). */
    MAIL_TRANSPORT: z.enum(['smtp', 'console']).default('smtp'),
    /** BREAKER_*: opossum circuit breaker around the SMTP send. */
    BREAKER_ERROR_THRESHOLD_PERCENT: envInt(50, 1, 100),
    BREAKER_RESET_TIMEOUT_MS: envInt(30_000, 100, 3_600_000),
    BREAKER_VOLUME_THRESHOLD: envInt(5, 1, 10_000),
    /** MAIL_MAX_ATTEMPTS / MAIL_RETRY_BASE_MS / MAIL_RETRY_MAX_MS: retry schedule (exponential, jittered). */
    MAIL_MAX_ATTEMPTS: envInt(8, 1, 100),
    MAIL_RETRY_BASE_MS: envInt(2_000, 1, 3_600_000),
    MAIL_RETRY_MAX_MS: envInt(600_000, 1, 86_400_000),
    /**
     * MAIL_RETENTION_DAYS: finished requests (sent, failed, superseded) are deleted from the inbox
     * this many days after their last change. A DLQ replay of a request already deleted is simply
     * recorded as new.
     */
    MAIL_RETENTION_DAYS: envInt(7, 1, 3650),
    /** MAIL_PAYLOAD_KEY (+ MAIL_PAYLOAD_KEYS, older keys): opens the sealed code; REQUIRED in production. */
    ...payloadKeyEnv(),
  })
  .superRefine((env, ctx) => {
    if (env.MAIL_RETRY_MAX_MS < env.MAIL_RETRY_BASE_MS) {
      ctx.addIssue({
        code: z.ZodIssueCode.custom,
        path: ['MAIL_RETRY_MAX_MS'],
        message: 'must be >= MAIL_RETRY_BASE_MS',
      });
    }
  })
  .transform((env) => ({ ...env, MAILER_DATABASE_URL: env.MAILER_DATABASE_URL ?? env.DATABASE_URL }));

const rawChecks: RawCheck[] = [
  (env) =>
    (env.SMTP_USER === undefined) !== (env.SMTP_PASSWORD === undefined)
      ? {
          variable: env.SMTP_USER === undefined ? 'SMTP_USER' : 'SMTP_PASSWORD',
          message: 'SMTP_USER and SMTP_PASSWORD go together',
        }
      : undefined,
  requirePayloadKeyInProduction,
  (env) =>
    env.NODE_ENV === 'production' && env.MAIL_TRANSPORT === 'console'
      ? {
          variable: 'MAIL_TRANSPORT',
          message: 'console prints codes to the log and is refused when NODE_ENV=production',
        }
      : undefined,
  (env) => {
    const requireTls =
      env.SMTP_REQUIRE_TLS === undefined ? undefined : ['true', '1', 'yes'].includes(env.SMTP_REQUIRE_TLS);
    const { problems } = parseFallbackUrls(env.SMTP_FALLBACK_URLS, requireTls);
    return problems.length > 0 ? { variable: 'SMTP_FALLBACK_URLS', message: problems.join(', ') } : undefined;
  },
];

export type MailerConfig = Readonly<z.infer<typeof schema>>;

export const parseMailerConfig = (env: Env): MailerConfig => parseEnv(schema, env, rawChecks);
export const loadMailerConfig = (): MailerConfig => loadConfigOrExit('mailer', schema, rawChecks);
