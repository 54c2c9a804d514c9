import { withTransaction } from '@shared/db';
import { clearLoginAttempts, loginRetryAfterS, reserveLoginAttempt } from '../data-access/login-throttle-repository';
import { findUserByEmail } from '../data-access/users-repository';
import type { DomainDeps } from './deps';
import { InvalidCredentialsError, TooManyAttemptsError } from './errors';
import { toPublicUser, type PublicUser } from './public-user';
import { loginBody, validate } from './schemas';
import { issueSession, type Session } from './session';

/**
 * Login: reserve the attempt first — per (address, client IP) up to LOGIN_MAX_FAILURES and per address
 * up to LOGIN_MAX_FAILURES_PER_ADDRESS in the window, in one statement, so concurrent guesses cannot all
 * pass a read of the counter and a refused attempt costs no argon2 — then verify the password (against a
 * dummy hash when the email is unknown, so both failures cost and answer the same). The limits live in
 * PostgreSQL and hold across instances. Success clears the reservations and starts a new token family.
 */
export function createLogin(deps: DomainDeps) {
  const { LOGIN_MAX_FAILURES, LOGIN_MAX_FAILURES_PER_ADDRESS, LOGIN_FAILURE_WINDOW_S: windowS } = deps.config;
  const limits = {
    perClient: LOGIN_MAX_FAILURES,
    perAddress: Math.max(LOGIN_MAX_FAILURES, LOGIN_MAX_FAILURES_PER_ADDRESS),
    windowS,
  };

  return async function login(body: unknown, clientIp = 'unknown'): Promise<{ user: PublicUser; session: Session }> {
    const input = validate(loginBody, body);
    const address = input.email.trim().toLowerCase();
    const client = clientIp.slice(0, 64);
    const now = deps.clock.now();
    if (!(await reserveLoginAttempt(deps.pool, address, client, now, limits))) {
      throw new TooManyAttemptsError(await loginRetryAfterS(deps.pool, address, client, now, windowS));
    }
    const user = await findUserByEmail(deps.pool, address);
    const valid = user
      ? await deps.hasher.verify(user.password_hash, input.password)
      : await deps.hasher.verifyDummy(input.password);
    if (!user || !valid) throw new InvalidCredentialsError();
    return withTransaction(deps.pool, async (db) => {
      await clearLoginAttempts(db, address, client);
      return { user: toPublicUser(user), session: await issueSession(db, deps, user.id) };
    });
  };
}
