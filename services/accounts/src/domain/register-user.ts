import { randomUUID } from 'node:crypto';
import { isDatabaseUnavailable } from '@shared/db';
import { buildEnvelope, EVENT_TYPE } from '@shared/events';
import { TOPIC } from '@shared/topics';
import { uniqueViolationOf } from '../data-access/queryable';
import { findUserIdByReferralCode } from '../data-access/users-repository';
import { registrationRetryAfterS, reserveRegistration } from '../data-access/registration-limits-repository';
import { insertRegistration } from '../data-access/registration-repository';
import type { RegistrationResult } from '../metrics';
import { newConfirmationRequest } from './confirmation-request';
import type { DomainDeps } from './deps';
import { AccountsError, EmailTakenError, InvalidReferralCodeError, TooManyRegistrationsError } from './errors';
import { generateReferralCode } from './referral-code';
import { registerBody, validate, type RegisterBody } from './schemas';
import type { Session } from './session';
import type { PublicUser } from './public-user';

export type Registration = { user: PublicUser; session: Session; requestId: string; createdAt: Date };

const REFERRAL_CODE_TRIES = 5;

/**
 * Registration: validate, hash the password, then ONE statement (so one transaction and one round
 * trip: data-access/registration-repository.ts) writes the user, the affiliate link, the confirmation
 * request, its `queued` delivery status, both outbox events and the refresh token. Email and Kafka are
 * not on this path: the relay and the mailer take it from the outbox.
 */
/**
 * One statement: a slot of the client's REGISTER_MAX_PER_IP_PER_HOUR (409s count: they probe which
 * addresses exist), and the duplicate check that spares an argon2 hash (the unique index still settles
 * races). Throws 429 too_many_registrations or 409 email_taken.
 */
async function reserveSlot(deps: DomainDeps, clientIp: string, email: string): Promise<void> {
  const now = deps.clock.now();
  const slot = await reserveRegistration(deps.pool, {
    clientIp,
    email,
    now,
    maxPerHour: deps.config.REGISTER_MAX_PER_IP_PER_HOUR,
  });
  if (!slot.reserved) throw new TooManyRegistrationsError(await registrationRetryAfterS(deps.pool, clientIp, now));
  if (slot.emailTaken) throw new EmailTakenError();
}

/** The user.registered event of a new user, for the outbox. */
function userRegisteredEvent(user: PublicUser, now: Date) {
  return {
    topic: TOPIC.userEvents,
    envelope: buildEnvelope({
      type: EVENT_TYPE.userRegistered,
      aggregateType: 'user',
      aggregateId: user.id,
      occurredAt: now,
      payload: {
        user_id: user.id,
        email: user.email,
        first_name: user.first_name,
        last_name: user.last_name,
        referral_code: user.referral_code,
        referred_by: user.referred_by,
        registered_at: now.toISOString(),
      },
    }),
  };
}

export function createRegisterUser(
  deps: DomainDeps & { commonPasswords: ReadonlySet<string>; newReferralCode?: () => string },
) {
  const schema = registerBody(deps.commonPasswords);
  const newReferralCode = deps.newReferralCode ?? generateReferralCode;

  async function register(body: unknown, clientIp: string): Promise<Registration> {
    const input = validate(schema, body);
    await reserveSlot(deps, clientIp, input.email);
    const passwordHash = await deps.hasher.hash(input.password);
    for (let attempt = 1; ; attempt++) {
      try {
        return await saveRegistration(input, passwordHash, newReferralCode());
      } catch (err) {
        const constraint = uniqueViolationOf(err);
        if (constraint === 'users_email_lower_key') throw new EmailTakenError();
        // 50 random bits make this rare; a fresh code in a fresh transaction is the whole fix.
        if (constraint === 'users_referral_code_key' && attempt < REFERRAL_CODE_TRIES) continue;
        throw err;
      }
    }
  }

  async function saveRegistration(
    input: RegisterBody,
    passwordHash: string,
    referralCode: string,
  ): Promise<Registration> {
    const now = deps.clock.now();
    // Users are never deleted, so a referrer found here still exists when the insert runs (and the
    // affiliate's foreign key would refuse the registration otherwise).
    const referrerId = input.referral_code ? await findUserIdByReferralCode(deps.pool, input.referral_code) : null;
    if (input.referral_code && !referrerId) throw new InvalidReferralCodeError();
    const user: PublicUser = {
      id: randomUUID(),
      email: input.email,
      first_name: input.first_name ?? null,
      last_name: input.last_name ?? null,
      email_confirmed: false,
      referral_code: referralCode,
      referred_by: referrerId,
    };
    const confirmation = newConfirmationRequest(user, {
      now,
      codeTtlS: deps.config.CONFIRMATION_CODE_TTL_S,
      payloadKeys: deps.payloadKeys,
    });
    const userRegistered = userRegisteredEvent(user, now);
    const refresh = deps.tokens.issueRefresh(user.id);
    await insertRegistration(deps.pool, {
      user: {
        id: user.id,
        email: user.email,
        passwordHash,
        firstName: user.first_name,
        lastName: user.last_name,
        referralCode,
      },
      referrerId,
      confirmation,
      refreshToken: { jti: refresh.jti, familyId: refresh.familyId, expiresAt: refresh.expiresAt },
      events: [userRegistered, confirmation.mailRequested],
      at: now,
    });
    const session: Session = { access_token: deps.tokens.issueAccess(user.id), refresh_token: refresh.token };
    return { user, session, requestId: confirmation.requestId, createdAt: now };
  }

  return async function registerUser(body: unknown, clientIp = 'unknown'): Promise<Registration> {
    try {
      const registration = await register(body, clientIp.slice(0, 64));
      deps.metrics.registrations.inc({ result: 'created' });
      return registration;
    } catch (err) {
      deps.metrics.registrations.inc({ result: registrationResultOf(err) });
      throw err;
    }
  };
}

function registrationResultOf(err: unknown): RegistrationResult {
  if (err instanceof EmailTakenError) return 'email_taken';
  if (err instanceof TooManyRegistrationsError) return 'rate_limited';
  if (err instanceof AccountsError && err.status === 400) return 'invalid';
  if (isDatabaseUnavailable(err)) return 'unavailable';
  return 'error';
}
