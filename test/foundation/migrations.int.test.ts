import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { runner } from 'node-pg-migrate';
import { MIGRATIONS_ROOT, SERVICE_MIGRATIONS } from '../../scripts/migrate';
import { readInfraState } from '../support/infra-state';
import { withDatabase } from '../support/database-url';

const ROOT = path.resolve(__dirname, '..', '..');
const MAILER_TABLES = ['mailer_outbox', 'mailer_requests'];

/** `npm run migrate` (and down) against real, empty databases: one for accounts, one for the mailer. */
describe('migrations (one schema per service)', () => {
  const state = readInfraState();
  const names = {
    accounts: `${state.databasePrefix}_mig_accounts`,
    mailer: `${state.databasePrefix}_mig_mailer`,
    legacy: `${state.databasePrefix}_mig_legacy`,
  };
  const url = (db: keyof typeof names) => withDatabase(state.adminDatabaseUrl, names[db]);
  const onAdmin = async (sql: string) => {
    const c = new pg.Client({ connectionString: state.adminDatabaseUrl });
    await c.connect();
    try {
      await c.query(sql);
    } finally {
      await c.end();
    }
  };
  const query = async <T extends pg.QueryResultRow>(db: keyof typeof names, sql: string): Promise<T[]> => {
    const c = new pg.Client({ connectionString: url(db) });
    await c.connect();
    try {
      return (await c.query<T>(sql)).rows;
    } finally {
      await c.end();
    }
  };
  const tables = async (db: keyof typeof names) =>
    (
      await query<{ table_name: string }>(
        db,
        `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE '%pgmigrations' ORDER BY 1`,
      )
    ).map((r) => r.table_name);
  const history = async (db: keyof typeof names, table: string) =>
    (await query<{ name: string }>(db, `SELECT name FROM ${table} ORDER BY id`)).map((r) => r.name);
  const migrationNames = (service: keyof typeof SERVICE_MIGRATIONS) =>
    readdirSync(SERVICE_MIGRATIONS[service].dir)
      .filter((f) => f.endsWith('.sql'))
      .map((f) => f.replace(/\.sql$/, ''))
      .sort();

  beforeAll(async () => {
    for (const name of Object.values(names)) await onAdmin(`CREATE DATABASE ${name}`);
  });
  afterAll(async () => {
    for (const name of Object.values(names)) await onAdmin(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });

  const run = (env: Record<string, string>, ...args: string[]) =>
    spawnSync('npm', ['run', '--silent', ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
  const twoDatabases = () => ({ DATABASE_URL: url('accounts'), MAILER_DATABASE_URL: url('mailer') });

  it(
    'when each service has its own database, then each gets only its own tables and history, and both go down ' +
      'and up again',
    async () => {
      const up = run(twoDatabases(), 'migrate');
      expect(up.status).toBe(0);
      const accountsTables = await tables('accounts');
      expect(accountsTables).toEqual(
        expect.arrayContaining([
          'users',
          'affiliates',
          'email_confirmations',
          'outbox',
          'refresh_tokens',
          'mail_delivery_status',
          'processed_events',
        ]),
      );
      expect(accountsTables).not.toEqual(expect.arrayContaining([MAILER_TABLES[0]]));
      expect(await tables('mailer')).toEqual(MAILER_TABLES);
      expect(await history('accounts', 'pgmigrations')).toEqual(migrationNames('accounts'));
      expect(await history('mailer', 'mailer_pgmigrations')).toEqual(migrationNames('mailer'));

      const again = run(twoDatabases(), 'migrate');
      expect(again.status).toBe(0);
      expect(again.stdout).toContain('accounts: up to date');
      expect(again.stdout).toContain('mailer: up to date');

      expect(run(twoDatabases(), 'migrate:down', '--', 'accounts', '1000').status).toBe(0);
      expect(run(twoDatabases(), 'migrate:down', '--', 'mailer', '1000').status).toBe(0);
      expect(await tables('accounts')).toEqual([]);
      expect(await tables('mailer')).toEqual([]);

      expect(run(twoDatabases(), 'migrate').status).toBe(0);
      expect(await tables('accounts')).toEqual(accountsTables);
      expect(await tables('mailer')).toEqual(MAILER_TABLES);
    },
  );

  it(
    'when a database was migrated before the split (one pgmigrations table), then migrate runs nothing and ' +
      'splits the history',
    async () => {
      // The layout before the split: every migration in one directory, one history table.
      const flat = mkdtempSync(path.join(tmpdir(), 'rp-flat-migrations-'));
      try {
        for (const service of ['accounts', 'mailer'] as const)
          cpSync(SERVICE_MIGRATIONS[service].dir, flat, { recursive: true });
        await runner({
          databaseUrl: url('legacy'),
          dir: flat,
          migrationsTable: 'pgmigrations',
          direction: 'up',
          singleTransaction: true,
          log: () => undefined,
        });
      } finally {
        rmSync(flat, { recursive: true, force: true });
      }
      const before = await tables('legacy');

      const up = run({ DATABASE_URL: url('legacy'), MAILER_DATABASE_URL: '' }, 'migrate');
      expect(up.stderr).toBe('');
      expect(up.status).toBe(0);
      expect(up.stdout).toContain('accounts: up to date');
      expect(up.stdout).toContain('mailer: up to date');
      expect(await tables('legacy')).toEqual(before);
      expect(await history('legacy', 'pgmigrations')).toEqual(migrationNames('accounts'));
      expect(await history('legacy', 'mailer_pgmigrations')).toEqual(migrationNames('mailer'));
    },
  );

  it('every migration belongs to a service: none lies directly in migrations/', () => {
    const loose = readdirSync(MIGRATIONS_ROOT).filter(
      (f) => f.endsWith('.sql') || f.endsWith('.ts') || f.endsWith('.js'),
    );
    expect(loose).toEqual([]);
  });

  it('exits 1 with a message and without the URL when PostgreSQL cannot be reached', () => {
    const result = run({ DATABASE_URL: 'postgres://postgres:s3cr3t-pw@127.0.0.1:1/nowhere' }, 'migrate');
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('[migrate] failed');
    expect(result.stderr + result.stdout).not.toContain('s3cr3t-pw');
  });
});
