import { withTransaction } from '@shared/db';
import {
  lockRefreshToken,
  markRefreshTokenUsed,
  revokeRefreshTokenFamily,
} from '../data-access/refresh-tokens-repository';
import type { DomainDeps } from './deps';
import { InvalidTokenError, TokenExpiredError, TokenReusedError } from './errors';
import { refreshBody, validate } from './schemas';
import { issueSession, type Session } from './session';

/**
 * Refresh-token rotation: each token is good for one use. Presenting a used (or revoked) token means
 * a copy leaked, so the whole family is revoked — the thief's and the owner's newest token alike —
 * and both must log in again.
 */
export function createRefreshSession(deps: DomainDeps) {
  return async function refreshSession(body: unknown): Promise<Session> {
    const { refresh_token } = validate(refreshBody, body);
    const claims = deps.tokens.verifyRefresh(refresh_token);
    const now = deps.clock.now();
    const outcome = await withTransaction(deps.pool, async (client) => {
      const stored = await lockRefreshToken(client, claims.jti);
      if (!stored || stored.user_id !== claims.userId || stored.family_id !== claims.familyId)
        return { kind: 'invalid' as const };
      if (stored.used_at || stored.revoked_at) {
        // Committed before answering: the revocation must stick although the request fails.
        await revokeRefreshTokenFamily(client, stored.family_id, now);
        return { kind: 'reused' as const };
      }
      if (stored.expires_at.getTime() <= now.getTime()) return { kind: 'expired' as const };
      await markRefreshTokenUsed(client, stored.jti, now);
      return { kind: 'rotated' as const, session: await issueSession(client, deps, stored.user_id, stored.family_id) };
    });
    switch (outcome.kind) {
      case 'rotated':
        return outcome.session;
      case 'reused':
        deps.logger.warn(
          { family_id: claims.familyId, user_id: claims.userId },
          'refresh token reused: family revoked',
        );
        throw new TokenReusedError();
      case 'expired':
        throw new TokenExpiredError();
      case 'invalid':
        throw new InvalidTokenError();
    }
  };
}
