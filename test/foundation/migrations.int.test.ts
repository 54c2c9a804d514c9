import { spawnSync } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { readInfraState } from '../support/infra-state';
import { withDatabase } from '../support/database-url';

const ROOT = path.resolve(__dirname, '..', '..');

/** `npm run migrate` (and down) against a real, empty database. */
describe('migrations', () => {
  const state = readInfraState();
  const name = `${state.databasePrefix}_migrations`;
  const url = withDatabase(state.adminDatabaseUrl, name);
  const admin = () => new pg.Client({ connectionString: state.adminDatabaseUrl });

  beforeAll(async () => {
    const c = admin();
    await c.connect();
    await c.query(`CREATE DATABASE ${name}`);
    await c.end();
  });
  afterAll(async () => {
    const c = admin();
    await c.connect();
    await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    await c.end();
  });

  const run = (...args: string[]) => spawnSync('npm', ['run', '--silent', ...args], { cwd: ROOT, env: { ...process.env, DATABASE_URL: url }, encoding: 'utf8', timeout: 60_000 });
  const tables = async () => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    const { rows } = await c.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name <> 'pgmigrations' ORDER BY 1`);
    await c.end();
    return rows.map((r) => r.table_name);
  };

  it('go up on an empty database, are a no-op the second time, and go all the way down and up again', async () => {
    const up = run('migrate');
    expect(up.status).toBe(0);
    const created = await tables();
    expect(created).toEqual(expect.arrayContaining(['users', 'affiliates', 'email_confirmations', 'outbox', 'refresh_tokens', 'mail_delivery_status', 'processed_events']));

    const again = run('migrate');
    expect(again.status).toBe(0);
    expect(again.stdout).toContain('up to date');

    const down = run('migrate:down', '--', '1000');
    expect(down.status).toBe(0);
    expect(await tables()).toEqual([]);

    expect(run('migrate').status).toBe(0);
    expect(await tables()).toEqual(created);
  });

  it('exits 1 with a message and without the URL when PostgreSQL cannot be reached', () => {
    const result = spawnSync('npm', ['run', '--silent', 'migrate'], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: 'postgres://postgres:s3cr3t-pw@127.0.0.1:1/nowhere' },
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('[migrate] failed');
    expect(result.stderr + result.stdout).not.toContain('s3cr3t-pw');
  });
});
