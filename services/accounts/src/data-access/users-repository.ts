import type { Queryable } from './queryable';

export type UserRow = {
  id: string;
  email: string;
  password_hash: string;
  first_name: string | null;
  last_name: string | null;
  referral_code: string;
  email_confirmed_at: Date | null;
  created_at: Date;
  referred_by: string | null;
};

const USER_COLUMNS = `u.id, u.email, u.password_hash, u.first_name, u.last_name, u.referral_code, u.email_confirmed_at,
  u.created_at,
  (SELECT a.referrer_user_id FROM affiliates a WHERE a.referred_user_id = u.id) AS referred_by`;

export async function findUserIdByReferralCode(db: Queryable, referralCode: string): Promise<string | null> {
  const { rows } = await db.query<{ id: string }>(`SELECT id FROM users WHERE referral_code = $1`, [referralCode]);
  return rows[0]?.id ?? null;
}

export async function findUserByEmail(db: Queryable, email: string): Promise<UserRow | null> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE lower(u.email) = lower($1)`, [
    email,
  ]);
  return rows[0] ?? null;
}

export async function findUserById(db: Queryable, id: string): Promise<UserRow | null> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE u.id = $1`, [id]);
  return rows[0] ?? null;
}

/** Locks the user row for the rest of the transaction: resends and confirmations of one user serialize. */
export async function lockUser(db: Queryable, id: string): Promise<UserRow | null> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users u WHERE u.id = $1 FOR UPDATE OF u`, [id]);
  return rows[0] ?? null;
}

export async function markEmailConfirmed(db: Queryable, id: string, at: Date): Promise<void> {
  await db.query(`UPDATE users SET email_confirmed_at = $2 WHERE id = $1 AND email_confirmed_at IS NULL`, [id, at]);
}
