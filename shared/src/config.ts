import { z } from 'zod';

/**
 * Environment parsing shared by every service. Each service describes its settings as a zod object
 * whose keys are the environment variable names; `loadConfig` parses `process.env` once at start and
 * returns a frozen, typed object. Nothing else in a service reads `process.env`.
 */

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration: ${problems.join('; ')}`);
    this.name = 'ConfigError';
  }
}

export type Env = Record<string, string | undefined>;

/**
 * A check across variables on the raw environment. It runs even when a field is invalid (zod's own
 * refinements stop at the first failing field), so the one error line names every offender.
 */
export type RawCheck = (env: Env) => { variable: string; message: string } | undefined;

/** Parses `env` with `schema`; throws a ConfigError naming every offending variable at once. */
export function parseEnv<S extends z.ZodTypeAny>(
  schema: S,
  env: Env,
  rawChecks: RawCheck[] = [],
): Readonly<z.infer<S>> {
  // Empty strings mean "unset" so that `FOO= npm start` falls back to the default like a missing FOO.
  const cleaned: Env = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') cleaned[key] = value;
  }
  const result = schema.safeParse(cleaned);
  const problems: string[] = [];
  if (!result.success) {
    for (const issue of result.error.issues) {
      // Never echo the received value: it may be a secret.
      problems.push(`${issue.path.join('.') || '(environment)'}: ${issue.message}`);
    }
  }
  for (const check of [kafkaSaslCheck, ...rawChecks]) {
    const problem = check(cleaned);
    if (problem) problems.push(`${problem.variable}: ${problem.message}`);
  }
  if (problems.length > 0 || !result.success) throw new ConfigError([...new Set(problems)]);
  return Object.freeze(result.data) as Readonly<z.infer<S>>;
}

/**
 * Loads a service's configuration or exits 1 with ONE line naming every bad or missing variable,
 * without a stack trace (the contract's start-up behaviour).
 */
export function loadConfigOrExit<S extends z.ZodTypeAny>(
  service: string,
  schema: S,
  rawChecks: RawCheck[] = [],
  env: Env = process.env,
): Readonly<z.infer<S>> {
  try {
    return parseEnv(schema, env, rawChecks);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${service}: configuration error: ${err.problems.join('; ')}\n`);
      process.exit(1);
    }
    throw err;
  }
}

// ---- reusable field parsers -------------------------------------------------------------------

/** An integer from an environment string, with inclusive bounds. */
export const envInt = (def: number, min = 0, max = Number.MAX_SAFE_INTEGER) =>
  z
    .string()
    .regex(/^-?\d+$/, 'must be an integer')
    .transform(Number)
    .pipe(z.number().int().min(min, `must be >= ${min}`).max(max, `must be <= ${max}`))
    .default(String(def));

/** A boolean from "true"/"false"/"1"/"0"/"yes"/"no". */
export const envBool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'], { errorMap: () => ({ message: 'must be true or false' }) })
    .transform((v) => v === 'true' || v === '1' || v === 'yes')
    .default(def ? 'true' : 'false');

/** A TCP port. */
export const envPort = (def: number) => envInt(def, 0, 65535);

/** A comma-separated list of host:port Kafka brokers. */
export const envBrokers = (def = '127.0.0.1:9092') =>
  z
    .string()
    .default(def)
    .transform((v) =>
      v
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean),
    )
    .pipe(
      z
        .array(z.string().regex(/^[^\s:]+:\d{1,5}$/, 'must be host:port[,host:port...]'))
        .min(1, 'must name at least one broker'),
    );

/** A postgres:// URL. */
export const envDatabaseUrl = (def = 'postgres://postgres@127.0.0.1:5432/postgres') =>
  z
    .string()
    .default(def)
    .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// URL');

export const envLogLevel = () => z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info');

export const KAFKA_SASL_MECHANISMS = ['plain', 'scram-sha-256', 'scram-sha-512'] as const;

/** KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD go together (every service). */
const kafkaSaslCheck: RawCheck = (env) => {
  const set = ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD'].filter(
    (k) => env[k] !== undefined,
  );
  if (set.length === 0 || set.length === 3) return undefined;
  const missing = ['KAFKA_SASL_MECHANISM', 'KAFKA_SASL_USERNAME', 'KAFKA_SASL_PASSWORD'].find(
    (k) => env[k] === undefined,
  ) as string;
  return {
    variable: missing,
    message: 'KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD go together',
  };
};

/**
 * Settings every service shares: where PostgreSQL and Kafka are, its HTTP port, and the topic prefix
 * tests use to keep their topics apart (empty in production: the contract's topic names as they are).
 */
export const commonEnv = (defaultPort: number) => ({
  /** DATABASE_URL: PostgreSQL connection string. */
  DATABASE_URL: envDatabaseUrl(),
  /** DB_CONNECT_TIMEOUT_MS / DB_STATEMENT_TIMEOUT_MS: bound every PostgreSQL wait (see createPool in db.ts). */
  DB_CONNECT_TIMEOUT_MS: envInt(5_000, 100, 120_000),
  DB_STATEMENT_TIMEOUT_MS: envInt(10_000, 100, 600_000),
  /** KAFKA_BROKERS: comma-separated bootstrap brokers. */
  KAFKA_BROKERS: envBrokers(),
  /** KAFKA_SSL: TLS to the brokers (system CAs). */
  KAFKA_SSL: envBool(false),
  /** KAFKA_SASL_MECHANISM / _USERNAME / _PASSWORD: SASL authentication to the brokers (all three or none). */
  KAFKA_SASL_MECHANISM: z
    .enum(KAFKA_SASL_MECHANISMS, { errorMap: () => ({ message: 'must be plain, scram-sha-256 or scram-sha-512' }) })
    .optional(),
  KAFKA_SASL_USERNAME: z.string().optional(),
  KAFKA_SASL_PASSWORD: z.string().optional(),
  /** KAFKA_TOPIC_PREFIX: prepended to every topic and consumer group name (tests isolate with it). */
  KAFKA_TOPIC_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9._-]*$/, 'only letters, digits, . _ -')
    .default(''),
  /** PORT: HTTP port for the API (accounts) and /healthz, /readyz, /metrics. */
  PORT: envPort(defaultPort),
  /** LOG_LEVEL: pino level. */
  LOG_LEVEL: envLogLevel(),
  /**
   * KAFKA_TOPIC_PARTITIONS / KAFKA_REPLICATION_FACTOR: used by whichever service first creates a missing
   * contract topic. Replication 0 (the default) follows the cluster: min(3, brokers), with
   * min.insync.replicas 2 when it is 3 or more.
   */
  KAFKA_TOPIC_PARTITIONS: envInt(6, 1, 1_000),
  KAFKA_REPLICATION_FACTOR: envInt(0, 0, 10),
  /** NODE_ENV: production tightens secret requirements. */
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
});
