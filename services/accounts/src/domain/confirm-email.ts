import { withTransaction } from '@shared/db';
import {
  countFailedAttempt,
  countRecentWrongCodes,
  lockNewestPendingConfirmation,
  markConfirmationConsumed,
} from '../data-access/confirmations-repository';
import { lockUser, markEmailConfirmed } from '../data-access/users-repository';
import { confirmationCodeMatches } from './confirmation-code';
import type { DomainDeps } from './deps';
import {
  CodeExpiredError,
  InvalidCodeError,
  InvalidTokenError,
  TooManyAttemptsError,
  type AccountsError,
} from './errors';
import { confirmBody, validate } from './schemas';

/**
 * Email confirmation with the newest pending request's code only. Wrong codes are counted on that
 * request (committed even though the call fails); after CONFIRMATION_MAX_ATTEMPTS the request is
 * locked and only a resend (a new request) helps — but a resend does not reset the per-user cap:
 * CONFIRMATION_MAX_FAILURES_PER_DAY wrong codes over every request of the last day (plus a code's
 * lifetime) lock confirmation until they age out, so guessing through resends stays slower than a
 * year (docs/security.md). Once confirmed, confirming again is a no-op 200.
 */
export function createConfirmEmail(deps: DomainDeps) {
  return async function confirmEmail(userId: string, body: unknown): Promise<{ email_confirmed: true }> {
    const { code } = validate(confirmBody, body);
    const now = deps.clock.now();
    const { CONFIRMATION_MAX_FAILURES_PER_DAY: perDay, CONFIRMATION_CODE_TTL_S: ttlS } = deps.config;
    const since = new Date(now.getTime() - (86_400 + ttlS) * 1000);
    const failure = await withTransaction(deps.pool, async (client): Promise<AccountsError | null> => {
      const user = await lockUser(client, userId);
      if (!user) return new InvalidTokenError();
      if (user.email_confirmed_at) return null;
      const request = await lockNewestPendingConfirmation(client, userId);
      if (!request) return new InvalidCodeError();
      if (request.attempts >= deps.config.CONFIRMATION_MAX_ATTEMPTS) return new TooManyAttemptsError();
      // Under the user row lock: concurrent guesses on several instances see each other's counts.
      if ((await countRecentWrongCodes(client, userId, since)) >= perDay) return new TooManyAttemptsError();
      if (request.expires_at.getTime() <= now.getTime()) return new CodeExpiredError();
      if (!confirmationCodeMatches(code, request.code_hash)) {
        await countFailedAttempt(client, request.request_id);
        return new InvalidCodeError();
      }
      await markConfirmationConsumed(client, request.request_id, now);
      await markEmailConfirmed(client, userId, now);
      return null;
    });
    if (failure) throw failure;
    return { email_confirmed: true };
  };
}
