import pg from 'pg';
import { Registry } from 'prom-client';
import { createPool } from '@shared/db';
import { createLogger } from '@shared/logger';
import { buildEnvelope, EVENT_TYPE } from '@shared/events';
import { migrate } from '../scripts/migrate';
import { parseAccountsConfig } from '../services/accounts/src/config';
import { createDomainDeps } from '../services/accounts/src/accounts';
import { createRegisterUser } from '../services/accounts/src/domain/register-user';
import { createRecordDeliveryStatus } from '../services/accounts/src/domain/record-delivery-status';

/**
 * `npx tsx bench/round-trips.ts`: PostgreSQL round trips (statements sent, BEGIN/COMMIT included) per
 * registration and per consumed delivery status, counted on the client on a fresh database — the
 * figure the profile's socket-write cost scales with (docs/performance.md).
 */
async function main(): Promise<void> {
  const admin = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const name = `rp_round_trips_${Date.now().toString(36)}`;
  const c = new pg.Client({ connectionString: admin });
  await c.connect();
  await c.query(`CREATE DATABASE ${name}`);
  const u = new URL(admin);
  u.pathname = `/${name}`;
  const url = u.toString();
  let count = 0;
  const original = pg.Client.prototype.query;
  try {
    await migrate({ databaseUrl: url });
    const logger = createLogger({ service: 'round-trips', level: 'silent' });
    const config = parseAccountsConfig({
      NODE_ENV: 'test',
      DATABASE_URL: url,
      JWT_SECRET: 'round-trips-secret-that-is-at-least-32-bytes',
      REGISTER_MAX_PER_IP_PER_HOUR: '1000000',
    });
    const pool = createPool({ connectionString: url, logger, applicationName: 'round-trips' });
    const deps = createDomainDeps({ config, logger, registry: new Registry(), pool });
    const register = createRegisterUser(deps);
    const record = createRecordDeliveryStatus({ ...deps, consumerName: 'round-trips' });
    // Counts every statement a pg client sends (a pool.query is one checkout + one statement).
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      count += 1;
      return (original as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof original;
    const n = 50;
    const users: { id: string; requestId: string }[] = [];
    for (let i = 0; i < n; i++) {
      const r = await register({ email: `rt.${i}@example.test`, password: 'correct horse battery staple' });
      users.push({ id: r.user.id, requestId: r.requestId });
    }
    process.stdout.write(`register: ${(count / n).toFixed(2)} statements per registration\n`);
    count = 0;
    for (const user of users) {
      const payload = {
        request_id: user.requestId,
        user_id: user.id,
        status: 'sent' as const,
        attempt: 1,
        error_class: null,
      };
      await record(
        buildEnvelope({ type: EVENT_TYPE.mailDeliveryStatus, aggregateType: 'user', aggregateId: user.id, payload }),
      );
    }
    process.stdout.write(`delivery status: ${(count / n).toFixed(2)} statements per consumed status\n`);
    pg.Client.prototype.query = original;
    await pool.end();
  } finally {
    pg.Client.prototype.query = original;
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
