import { withTransaction } from '@shared/db';
import { clearLoginFailures, readLoginThrottle, recordLoginFailure, type LoginThrottle } from '../data-access/login-throttle-repository';
import { findUserByEmail } from '../data-access/users-repository';
import type { DomainDeps } from './deps';
import { InvalidCredentialsError, TooManyAttemptsError } from './errors';
import { toPublicUser, type PublicUser } from './public-user';
import { loginBody, validate } from './schemas';
import { issueSession, type Session } from './session';

/**
 * Login: refuse while the address is throttled, verify the password (against a dummy hash when the
 * email is unknown, so both failures cost the same and answer the same), count failures in
 * PostgreSQL so the limit holds across instances, and start a new refresh-token family on success.
 */
export function createLogin(deps: DomainDeps) {
  const { LOGIN_MAX_FAILURES: maxFailures, LOGIN_FAILURE_WINDOW_S: windowS } = deps.config;

  const windowEndsAt = (t: LoginThrottle) => t.windowStartedAt.getTime() + windowS * 1000;

  return async function login(body: unknown): Promise<{ user: PublicUser; session: Session }> {
    const input = validate(loginBody, body);
    const address = input.email.trim().toLowerCase();
    const now = deps.clock.now();
    const throttle = await readLoginThrottle(deps.pool, address);
    if (throttle && throttle.failures >= maxFailures && windowEndsAt(throttle) > now.getTime()) {
      throw new TooManyAttemptsError(Math.ceil((windowEndsAt(throttle) - now.getTime()) / 1000));
    }
    const user = await findUserByEmail(deps.pool, address);
    const valid = user ? await deps.hasher.verify(user.password_hash, input.password) : await deps.hasher.verifyDummy(input.password);
    if (!user || !valid) {
      await recordLoginFailure(deps.pool, address, now, windowS);
      throw new InvalidCredentialsError();
    }
    return withTransaction(deps.pool, async (client) => {
      if (throttle) await clearLoginFailures(client, address);
      return { user: toPublicUser(user), session: await issueSession(client, deps, user.id) };
    });
  };
}
