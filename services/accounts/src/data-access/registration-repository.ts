import { outboxRowsFrom, outboxValues, type OutboxEvent } from './outbox-repository';
import type { Queryable } from './queryable';

export type NewRegistration = {
  user: {
    id: string;
    email: string;
    passwordHash: string;
    firstName: string | null;
    lastName: string | null;
    referralCode: string;
  };
  referrerId: string | null;
  confirmation: { requestId: string; codeHash: string; expiresAt: Date };
  refreshToken: { jti: string; familyId: string; expiresAt: Date };
  events: OutboxEvent[];
  at: Date;
};

/**
 * Writes a whole registration in ONE statement, hence one transaction and one round trip: the user,
 * the affiliate link (when referred), the confirmation request, its `queued` delivery status, the
 * outbox events (in order, one NOTIFY) and the refresh token. The other rows are inserted from the
 * user's RETURNING, so none exists without it; foreign keys are checked at the end of the statement,
 * and a unique violation (email, referral code) still names its constraint.
 */
export async function insertRegistration(db: Queryable, r: NewRegistration): Promise<void> {
  await db.query({
    name: 'accounts-insert-registration',
    text: `WITH u AS (
             INSERT INTO users (id, email, password_hash, first_name, last_name, referral_code, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id
           ), a AS (
             INSERT INTO affiliates (referred_user_id, referrer_user_id, created_at)
             SELECT u.id, $8::uuid, $7 FROM u WHERE $8::uuid IS NOT NULL
           ), c AS (
             INSERT INTO email_confirmations (request_id, user_id, code_hash, expires_at, created_at)
             SELECT $9, u.id, $10, $11, $7 FROM u
           ), s AS (
             INSERT INTO mail_delivery_status (request_id, user_id, status, attempt, updated_at)
             SELECT $9, u.id, 'queued', 0, $7 FROM u
           ), t AS (
             INSERT INTO refresh_tokens (jti, family_id, user_id, expires_at, created_at)
             SELECT $12, $13, u.id, $14, $7 FROM u
           )
           INSERT INTO outbox ${outboxRowsFrom(15)}`,
    values: [
      r.user.id,
      r.user.email,
      r.user.passwordHash,
      r.user.firstName,
      r.user.lastName,
      r.user.referralCode,
      r.at,
      r.referrerId,
      r.confirmation.requestId,
      r.confirmation.codeHash,
      r.confirmation.expiresAt,
      r.refreshToken.jti,
      r.refreshToken.familyId,
      r.refreshToken.expiresAt,
      ...outboxValues(r.events),
    ],
  });
}
