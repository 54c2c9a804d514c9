import { z } from 'zod';
import { payloadKeyEnv, requirePayloadKeyInProduction } from '@shared/payload-crypto';
import { commonEnv, envInt, envPort, loadConfigOrExit, type Env, parseEnv, type RawCheck } from '@shared/config';

/** A duration like 900, 30s, 15m, 12h or 7d, in seconds. */
const duration = (def: string) =>
  z
    .string()
    .default(def)
    .refine((v) => /^\d+[smhd]?$/.test(v), 'must be a duration like 900, 30s, 15m, 12h or 7d')
    .transform((v) => {
      const n = Number.parseInt(v, 10);
      const unit = v.at(-1) ?? '';
      return n * ({ s: 1, m: 60, h: 3600, d: 86400 }[unit] ?? 1);
    })
    .pipe(z.number().int().positive('must be positive'));

/** TRUST_PROXY: express' `trust proxy` — false (default), true, a hop count, or addresses/subnets. */
const trustProxy = z
  .string()
  .default('false')
  .transform((v): boolean | number | string => {
    if (['false', '0', 'no', 'off'].includes(v)) return false;
    if (['true', 'yes', 'on'].includes(v)) return true;
    return /^\d+$/.test(v) ? Number(v) : v;
  });

const schema = z.object({
  ...commonEnv(3000),
  /** OPS_PORT / OPS_HOST: the ops listener (/metrics, /readyz, /healthz), never the public port. */
  OPS_PORT: envPort(3010),
  OPS_HOST: z.string().min(1).default('0.0.0.0'),
  /** MAIL_PAYLOAD_KEY (+ MAIL_PAYLOAD_KEYS, older keys): seals the code in mail.requested; REQUIRED in production. */
  ...payloadKeyEnv(),
  TRUST_PROXY: trustProxy,
  /** JWT_SECRET: HS256 key; REQUIRED and >= 32 bytes when NODE_ENV=production, random per process otherwise. */
  JWT_SECRET: z
    .string()
    .refine((v) => Buffer.byteLength(v, 'utf8') >= 32, 'must be at least 32 bytes')
    .optional(),
  /** JWT_ACCESS_TTL: access-token lifetime. */
  JWT_ACCESS_TTL: duration('15m'),
  /** JWT_REFRESH_TTL: refresh-token lifetime. */
  JWT_REFRESH_TTL: duration('7d'),
  /** JWT_ISSUER / JWT_AUDIENCE: checked on every verify. */
  JWT_ISSUER: z.string().default('registration-platform/accounts'),
  JWT_AUDIENCE: z.string().default('registration-platform'),
  /** RESEND_COOLDOWN_S: per-user wait between two resends. */
  RESEND_COOLDOWN_S: envInt(60, 0, 86_400),
  /** RESEND_MAX_PER_HOUR: per-user resend cap in any rolling hour. */
  RESEND_MAX_PER_HOUR: envInt(5, 1, 100),
  /** CONFIRMATION_CODE_TTL_S: how long a 6-digit code is valid. */
  CONFIRMATION_CODE_TTL_S: envInt(900, 30, 7 * 86_400),
  /** CONFIRMATION_MAX_ATTEMPTS: wrong codes allowed per request before 429 too_many_attempts. */
  CONFIRMATION_MAX_ATTEMPTS: envInt(5, 1, 20),
  /**
   * CONFIRMATION_MAX_FAILURES_PER_DAY: wrong codes per user across all its requests (resends do not
   * reset it) in the last 24 h; at most 1,000, so guessing a 6-digit code takes > 1,000 days on average.
   */
  CONFIRMATION_MAX_FAILURES_PER_DAY: envInt(20, 1, 1_000),
  /**
   * LOGIN_MAX_FAILURES: login attempts per (address, client IP) in the window before 429;
   * LOGIN_MAX_FAILURES_PER_ADDRESS: the higher ceiling per address across every client IP (what a
   * distributed guesser gets, and what it takes to lock the owner out); LOGIN_FAILURE_WINDOW_S.
   * A successful login clears its client's and its address's counters.
   */
  LOGIN_MAX_FAILURES: envInt(5, 1, 1_000),
  LOGIN_MAX_FAILURES_PER_ADDRESS: envInt(50, 1, 100_000),
  LOGIN_FAILURE_WINDOW_S: envInt(900, 1, 86_400),
  /** REGISTER_MAX_PER_IP_PER_HOUR: registrations (409s included) per client IP per hour before 429. */
  REGISTER_MAX_PER_IP_PER_HOUR: envInt(20, 1, 1_000_000),
  /** ARGON2_MEMORY_KIB / ARGON2_TIME_COST / ARGON2_PARALLELISM: at least OWASP's minimum. */
  ARGON2_MEMORY_KIB: envInt(19_456, 19_456, 4_194_304),
  ARGON2_TIME_COST: envInt(2, 2, 100),
  ARGON2_PARALLELISM: envInt(1, 1, 16),
  /** PROCESSED_EVENTS_RETENTION_DAYS: how long consumed event ids are kept for dedupe. */
  PROCESSED_EVENTS_RETENTION_DAYS: envInt(14, 1, 3650),
  /** HOUSEKEEPING_INTERVAL_S: how often old dedupe records and expired login windows are deleted. */
  HOUSEKEEPING_INTERVAL_S: envInt(300, 1, 86_400),
  /**
   * REGISTER_WAIT_MS: how long a registration waits by default for the delivery status (for clients
   * that expect email_confirmation_sent: true with healthy SMTP); `Prefer: wait=N` overrides it.
   */
  REGISTER_WAIT_MS: envInt(0, 0, 3_000),
  /** CORS_ORIGINS: comma-separated browser origins allowed to call the API (default: none). */
  CORS_ORIGINS: z
    .string()
    .default('')
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(
      z.array(
        z
          .string()
          .regex(/^https?:\/\/[^\s/,]+$/, 'must be origins like https://app.example.com (scheme://host[:port])'),
      ),
    ),
  /** DB_POOL_MAX: PostgreSQL connections of this instance. */
  DB_POOL_MAX: envInt(20, 1, 500),
});

const rawChecks: RawCheck[] = [
  (env) =>
    env.NODE_ENV === 'production' && env.JWT_SECRET === undefined
      ? { variable: 'JWT_SECRET', message: 'is required when NODE_ENV=production' }
      : undefined,
  requirePayloadKeyInProduction,
];

export type AccountsConfig = Readonly<z.infer<typeof schema>>;

export const parseAccountsConfig = (env: Env): AccountsConfig => parseEnv(schema, env, rawChecks);
export const loadAccountsConfig = (): AccountsConfig => loadConfigOrExit('accounts', schema, rawChecks);
