import type { Pool, PoolClient } from '@shared/db';

/**
 * A pool or a client inside a transaction: repositories work with either. Queries on the
 * registration path are named (prepared once per connection): PostgreSQL then skips parse and plan,
 * which is CPU the argon2 hashing of the same requests needs.
 */
export type Queryable = Pool | PoolClient;

/** PostgreSQL unique_violation, with the constraint that was hit. */
export function uniqueViolationOf(err: unknown): string | null {
  if (err && typeof err === 'object' && (err as { code?: unknown }).code === '23505') {
    const constraint = (err as { constraint?: unknown }).constraint;
    return typeof constraint === 'string' ? constraint : '';
  }
  return null;
}
