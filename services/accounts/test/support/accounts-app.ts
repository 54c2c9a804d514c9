import type { Express } from 'express';
import request from 'supertest';
import { Registry } from 'prom-client';
import { createPool, type Pool } from '@shared/db';
import { createLogger } from '@shared/logger';
import { createOpsApp } from '@shared/http';
import { parseAccountsConfig, type AccountsConfig } from '../../src/config';
import { createDomainDeps } from '../../src/accounts';
import type { Clock } from '../../src/domain/clock';
import type { DomainDeps } from '../../src/domain/deps';
import { createAccountsApp } from '../../src/entry-points/http/app';
import { createTestDatabase, type TestDatabase } from '../../../../test/support/infra';
import { waitFor } from '../../../../test/support/wait-for';
import { openTestCode, TEST_MAIL_PAYLOAD_KEY } from '../../../../test/support/payload-key';

export const TEST_JWT_SECRET = 'test-secret-that-is-at-least-32-bytes-long!!';

/** A clock the test moves by hand: cooldowns and expiries without sleeping. */
export function createTestClock(start = new Date()): Clock & { advance: (seconds: number) => void } {
  let now = start.getTime();
  return { now: () => new Date(now), advance: (seconds) => (now += seconds * 1000) };
}

export type TestAccounts = {
  app: Express;
  http: ReturnType<typeof request>;
  /** The ops listener's app (/metrics, /readyz, /healthz), as main.ts serves it on OPS_PORT. */
  opsHttp: ReturnType<typeof request>;
  deps: DomainDeps;
  registry: Registry;
  config: AccountsConfig;
  pool: Pool;
  close: () => Promise<void>;
};

/**
 * An accounts app in this process on `databaseUrl`, wired like main.ts (same composition), with
 * argon2 at OWASP's minimum and a fixed JWT secret so several instances accept each other's tokens.
 */
export function startTestAccounts(opts: {
  databaseUrl: string;
  env?: Record<string, string>;
  clock?: Clock;
}): TestAccounts {
  const config = parseAccountsConfig({
    NODE_ENV: 'test',
    DATABASE_URL: opts.databaseUrl,
    JWT_SECRET: TEST_JWT_SECRET,
    MAIL_PAYLOAD_KEY: TEST_MAIL_PAYLOAD_KEY,
    // Every test request comes from 127.0.0.1: the per-IP registration limit is tested on its own.
    REGISTER_MAX_PER_IP_PER_HOUR: '1000000',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ...opts.env,
  });
  const logger = createLogger({ service: 'accounts', level: config.LOG_LEVEL });
  const registry = new Registry();
  const pool = createPool({ connectionString: config.DATABASE_URL, logger, applicationName: 'accounts-test', max: 20 });
  const deps = createDomainDeps({ config, logger, registry, pool, ...(opts.clock ? { clock: opts.clock } : {}) });
  const app = createAccountsApp({ ...deps, registry });
  const ops = createOpsApp({ logger, registry, checks: [] });
  return { app, http: request(app), opsHttp: request(ops), deps, registry, config, pool, close: () => pool.end() };
}

/**
 * The usual setup of an accounts test file in one line: a fresh database and `instances` accounts apps
 * on it (two share the database to prove limits hold across instances), created in beforeAll, closed
 * and dropped in afterAll. The returned objects stand for them from the first test on, e.g.
 * `const { db, accounts } = withTestAccounts({ env, clock });`.
 */
export function withTestAccounts(opts: { env?: Record<string, string>; clock?: Clock; instances?: number } = {}): {
  db: TestDatabase;
  accounts: TestAccounts;
  instances: TestAccounts[];
} {
  let db: TestDatabase | undefined;
  const started: TestAccounts[] = [];
  const count = opts.instances ?? 1;
  beforeAll(async () => {
    db = await createTestDatabase();
    for (let i = 0; i < count; i++) {
      started.push(
        startTestAccounts({
          databaseUrl: db.url,
          ...(opts.env ? { env: opts.env } : {}),
          ...(opts.clock ? { clock: opts.clock } : {}),
        }),
      );
    }
  });
  afterAll(async () => {
    for (const accounts of started) await accounts.close();
    await db?.drop();
  });
  const instances = Array.from({ length: count }, (_, i) => lateBound(() => started[i], `accounts instance ${i}`));
  return { db: lateBound(() => db, 'test database'), accounts: instances[0] as TestAccounts, instances };
}

/**
 * Stands for an object that beforeAll creates later: property reads go to it once it exists. (The
 * test file can then name `accounts` and `db` at the top, as it would a variable set in beforeAll.)
 */
function lateBound<T extends object>(get: () => T | undefined, what: string): T {
  const target = () => {
    const value = get();
    if (!value) throw new Error(`${what} is used before beforeAll created it`);
    return value;
  };
  return new Proxy({} as T, {
    get: (_, property) => Reflect.get(target(), property),
    has: (_, property) => Reflect.has(target(), property),
  });
}

export const strongPassword = 'correct horse battery staple';

let counter = 0;
/** A unique address per call (tests share a database file-wide). */
export function uniqueEmail(label = 'user'): string {
  counter += 1;
  return `${label}.${Date.now().toString(36)}.${counter}@example.com`;
}

/** The plain code the mailer would send for `requestId` (read sealed from the outbox payload, opened with the test key). */
export async function codeOf(pool: Pool, requestId: string): Promise<string> {
  const { rows } = await pool.query<{ code: string }>(
    `SELECT payload->'vars'->>'code' AS code FROM outbox WHERE type = 'mail.requested' AND payload->>'request_id' = $1`,
    [requestId],
  );
  const code = rows[0]?.code;
  if (!code) throw new Error(`no mail.requested outbox row for ${requestId}`);
  return openTestCode(code, requestId);
}

export async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = await registry.getSingleMetric(name)?.get();
  const sample = metric?.values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return sample?.value ?? 0;
}

/**
 * Sends an anonymous resend and waits until its database work, which runs after the response (see
 * resend-confirmation.ts), has been counted in accounts_resend_requests_total.
 */
export async function anonymousResendSettled(accounts: TestAccounts, body: unknown): Promise<request.Response> {
  const total = async () => {
    const metric = await accounts.registry.getSingleMetric('accounts_resend_requests_total')?.get();
    return (metric?.values ?? []).reduce((sum, v) => sum + v.value, 0);
  };
  const before = await total();
  const res = await accounts.http.post('/api/v1/usr/email/resend').send(body as object);
  if (res.status === 202)
    await waitFor(async () => (await total()) > before, {
      timeoutMs: 10_000,
      message: 'anonymous resend work not settled',
    });
  return res;
}
