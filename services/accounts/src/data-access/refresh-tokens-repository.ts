import type { Queryable } from './queryable';

export type RefreshTokenRow = {
  jti: string;
  family_id: string;
  user_id: string;
  expires_at: Date;
  used_at: Date | null;
  revoked_at: Date | null;
};

export async function insertRefreshToken(
  db: Queryable,
  t: { jti: string; familyId: string; userId: string; expiresAt: Date; createdAt: Date },
): Promise<void> {
  await db.query({
    name: 'accounts-insert-refresh-token',
    text: `INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)`,
    values: [t.jti, t.familyId, t.userId, t.expiresAt, t.createdAt],
  });
}

/** Locks the token row: two concurrent refreshes with one token serialize, and the second sees it used. */
export async function lockRefreshToken(db: Queryable, jti: string): Promise<RefreshTokenRow | null> {
  const { rows } = await db.query<RefreshTokenRow>(
    `SELECT jti, family_id, user_id, expires_at, used_at, revoked_at FROM refresh_tokens WHERE jti = $1 FOR UPDATE`,
    [jti],
  );
  return rows[0] ?? null;
}

export async function markRefreshTokenUsed(db: Queryable, jti: string, at: Date): Promise<void> {
  await db.query(`UPDATE refresh_tokens SET used_at = $2 WHERE jti = $1`, [jti, at]);
}

export async function revokeRefreshTokenFamily(db: Queryable, familyId: string, at: Date): Promise<void> {
  await db.query(`UPDATE refresh_tokens SET revoked_at = $2 WHERE family_id = $1 AND revoked_at IS NULL`, [
    familyId,
    at,
  ]);
}
