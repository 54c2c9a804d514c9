import { readdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { runner } from 'node-pg-migrate';

export const MIGRATIONS_ROOT = path.join(__dirname, '..', 'migrations');

/**
 * Each service owns its schema: its own migrations directory and its own node-pg-migrate history
 * table, so the two can live in one database (a one-box stack) or in two, and migrate alone.
 * accounts keeps the table name `pgmigrations` that every database migrated before the split has.
 */
export const SERVICE_MIGRATIONS = {
  accounts: { dir: path.join(MIGRATIONS_ROOT, 'accounts'), table: 'pgmigrations' },
  mailer: { dir: path.join(MIGRATIONS_ROOT, 'mailer'), table: 'mailer_pgmigrations' },
} as const;

export type MigratedService = keyof typeof SERVICE_MIGRATIONS;

type Log = (msg: string) => void;

/** Applies (or reverts) one service's SQL migrations. Returns the names of the migrations it ran. */
export async function migrateService(opts: {
  service: MigratedService;
  databaseUrl: string;
  direction?: 'up' | 'down';
  count?: number;
  log?: Log;
}): Promise<string[]> {
  const { dir, table } = SERVICE_MIGRATIONS[opts.service];
  if (opts.service === 'accounts') await splitLegacyHistory(opts.databaseUrl, opts.log);
  const ran = await runner({
    databaseUrl: opts.databaseUrl,
    dir,
    migrationsTable: table,
    direction: opts.direction ?? 'up',
    count: opts.count ?? (opts.direction === 'down' ? 1 : Infinity),
    singleTransaction: true,
    checkOrder: true,
    verbose: false,
    log: opts.log ?? (() => undefined),
  });
  return ran.map((m) => m.name);
}

/**
 * `npm run migrate`: every service's migrations up, accounts into `databaseUrl`, the mailer into
 * `mailerDatabaseUrl` (default: the same database, as the services' own defaults).
 */
export async function migrate(opts: { databaseUrl: string; mailerDatabaseUrl?: string; log?: Log }): Promise<string[]> {
  const log = opts.log ? { log: opts.log } : {};
  const accounts = await migrateService({ service: 'accounts', databaseUrl: opts.databaseUrl, ...log });
  const mailerUrl = opts.mailerDatabaseUrl || opts.databaseUrl;
  const mailer = await migrateService({ service: 'mailer', databaseUrl: mailerUrl, ...log });
  return [...accounts, ...mailer];
}

/**
 * Before the split, one `pgmigrations` table recorded every migration, the mailer's included; with
 * those names left in it, accounts' history would not match its directory (node-pg-migrate's order
 * check fails). The mailer's rows move to `mailer_pgmigrations` of the same database — that is where
 * its tables are — so a database migrated before the split is already up to date for both services.
 * (A mailer given a new database of its own starts there from an empty history; see README.)
 */
async function splitLegacyHistory(databaseUrl: string, log?: Log): Promise<void> {
  const mailerNames = readdirSync(SERVICE_MIGRATIONS.mailer.dir)
    .filter((f) => f.endsWith('.sql'))
    .map((f) => f.replace(/\.sql$/, ''));
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ legacy: boolean }>(
      `SELECT to_regclass('public.pgmigrations') IS NOT NULL AS legacy`,
    );
    if (!rows[0]?.legacy) return;
    await client.query('BEGIN');
    const moved = await client.query(
      `WITH moved AS (DELETE FROM pgmigrations WHERE name = ANY($1::text[]) RETURNING name, run_on)
       SELECT name, run_on FROM moved ORDER BY run_on, name`,
      [mailerNames],
    );
    if (moved.rowCount) {
      await client.query(
        `CREATE TABLE IF NOT EXISTS mailer_pgmigrations
           (id serial PRIMARY KEY, name varchar(255) NOT NULL, run_on timestamp NOT NULL)`,
      );
      for (const row of moved.rows as Array<{ name: string; run_on: Date }>) {
        await client.query(
          `INSERT INTO mailer_pgmigrations (name, run_on)
           SELECT $1::varchar, $2::timestamp
            WHERE NOT EXISTS (SELECT 1 FROM mailer_pgmigrations WHERE name = $1::varchar)`,
          [row.name, row.run_on],
        );
      }
      log?.(`moved the mailer's ${moved.rowCount} migration(s) from pgmigrations to mailer_pgmigrations`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  } finally {
    await client.end();
  }
}

async function main(): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const mailerDatabaseUrl = process.env.MAILER_DATABASE_URL || databaseUrl;
  const log = (m: string) => console.log(`[migrate] ${m}`);
  const [direction = 'up', service, countArg] = process.argv.slice(2);
  if (direction === 'down') {
    if (service !== 'accounts' && service !== 'mailer') {
      throw new Error('usage: migrate.ts down <accounts|mailer> [count] (reverting is one service at a time)');
    }
    const url = service === 'mailer' ? mailerDatabaseUrl : databaseUrl;
    const count = countArg ? Number(countArg) : 1;
    const ran = await migrateService({ service, databaseUrl: url, direction: 'down', count, log });
    console.log(`[migrate] ${service} down: ${ran.join(', ') || 'nothing to revert'}`);
    return;
  }
  const accounts = await migrateService({ service: 'accounts', databaseUrl, log });
  const mailer = await migrateService({ service: 'mailer', databaseUrl: mailerDatabaseUrl, log });
  for (const [name, ran] of [
    ['accounts', accounts],
    ['mailer', mailer],
  ] as const) {
    console.log(`[migrate] ${name}: ${ran.length === 0 ? 'up to date' : `up: ${ran.join(', ')}`}`);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    // The URL may carry a password: print the error message only, never the connection string.
    console.error(`[migrate] failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
