import path from 'node:path';
import { runner } from 'node-pg-migrate';

export const MIGRATIONS_DIR = path.join(__dirname, '..', 'migrations');

/**
 * Applies (or reverts) the SQL migrations in migrations/ — the schema's single source of truth.
 * Returns the names of the migrations it ran.
 */
export async function migrate(opts: { databaseUrl: string; direction?: 'up' | 'down'; count?: number; log?: (msg: string) => void }): Promise<string[]> {
  const ran = await runner({
    databaseUrl: opts.databaseUrl,
    dir: MIGRATIONS_DIR,
    migrationsTable: 'pgmigrations',
    direction: opts.direction ?? 'up',
    count: opts.count ?? (opts.direction === 'down' ? 1 : Infinity),
    singleTransaction: true,
    checkOrder: true,
    verbose: false,
    log: opts.log ?? (() => undefined),
  });
  return ran.map((m) => m.name);
}

async function main(): Promise<void> {
  const databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
  const direction = process.argv[2] === 'down' ? 'down' : 'up';
  const count = process.argv[3] ? Number(process.argv[3]) : undefined;
  const ran = await migrate({ databaseUrl, direction, ...(count !== undefined ? { count } : {}), log: (m) => console.log(`[migrate] ${m}`) });
  console.log(ran.length === 0 ? '[migrate] no migrations to run: the schema is up to date' : `[migrate] ${direction}: ${ran.join(', ')}`);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    // The URL may carry a password: print the error message only, never the connection string.
    console.error(`[migrate] failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  });
}
