import type { Queryable } from '../data-access/queryable';
import { insertRefreshToken } from '../data-access/refresh-tokens-repository';
import type { DomainDeps } from './deps';

export type Session = { access_token: string; refresh_token: string };

/** A new access token and a stored refresh token (a new family unless `familyId` continues one). */
export async function issueSession(
  db: Queryable,
  deps: Pick<DomainDeps, 'tokens' | 'clock'>,
  userId: string,
  familyId?: string,
): Promise<Session> {
  const refresh = deps.tokens.issueRefresh(userId, familyId);
  await insertRefreshToken(db, {
    jti: refresh.jti,
    familyId: refresh.familyId,
    userId,
    expiresAt: refresh.expiresAt,
    createdAt: deps.clock.now(),
  });
  return { access_token: deps.tokens.issueAccess(userId), refresh_token: refresh.token };
}
