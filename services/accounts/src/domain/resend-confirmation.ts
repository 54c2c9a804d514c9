import { randomUUID } from 'node:crypto';
import { withTransaction } from '@shared/db';
import type { Queryable } from '../data-access/queryable';
import { readConfirmationHistory, supersedePendingConfirmations } from '../data-access/confirmations-repository';
import { insertOutboxEvents } from '../data-access/outbox-repository';
import { findUserByEmail, lockUser } from '../data-access/users-repository';
import { createConfirmationRequest } from './confirmation-request';
import type { DomainDeps } from './deps';
import { AlreadyConfirmedError, InvalidTokenError, ResendCooldownError } from './errors';
import { decideResend } from './resend-policy';
import { anonymousResendBody, validate } from './schemas';

export type ResendAccepted = { email_confirmation: { request_id: string; status: 'queued' }; retry_after_s: number };

type Attempt =
  | { kind: 'queued'; requestId: string }
  | { kind: 'already_confirmed' }
  | { kind: 'unknown_user' }
  | { kind: 'limited'; reason: 'cooldown' | 'hourly_cap'; retryAfterS: number };

/**
 * Resending the confirmation email. One transaction per attempt holds the user's row lock, so two
 * concurrent resends serialize and the second sees the first's request (cooldown) instead of both
 * sending. The anonymous variant answers every address alike (no account enumeration) and sends
 * only for an existing unconfirmed account within its limits.
 */
export function createResendConfirmation(deps: DomainDeps) {
  const limits = { cooldownS: deps.config.RESEND_COOLDOWN_S, maxPerHour: deps.config.RESEND_MAX_PER_HOUR };
  const accepted = (requestId: string): ResendAccepted => ({ email_confirmation: { request_id: requestId, status: 'queued' }, retry_after_s: limits.cooldownS });

  const attempt = (userId: string): Promise<Attempt> =>
    withTransaction(deps.pool, async (client: Queryable): Promise<Attempt> => {
      const user = await lockUser(client, userId);
      if (!user) return { kind: 'unknown_user' };
      if (user.email_confirmed_at) return { kind: 'already_confirmed' };
      const now = deps.clock.now();
      const decision = decideResend(await readConfirmationHistory(client, userId, now), limits, now);
      if (!decision.allowed) return { kind: 'limited', reason: decision.reason, retryAfterS: decision.retryAfterS };
      await supersedePendingConfirmations(client, user.id);
      const { requestId, mailRequested } = await createConfirmationRequest(client, user, now, deps.config.CONFIRMATION_CODE_TTL_S);
      await insertOutboxEvents(client, [mailRequested]);
      return { kind: 'queued', requestId };
    });

  const count = (a: Attempt) =>
    deps.metrics.resends.inc({ result: a.kind === 'limited' ? a.reason : a.kind === 'unknown_user' ? 'ignored' : a.kind });

  return {
    /** Bearer variant: the caller learns why nothing was sent. */
    async forUser(userId: string): Promise<ResendAccepted> {
      const result = await attempt(userId);
      count(result);
      switch (result.kind) {
        case 'queued':
          return accepted(result.requestId);
        case 'already_confirmed':
          throw new AlreadyConfirmedError();
        case 'limited':
          throw new ResendCooldownError(result.retryAfterS);
        case 'unknown_user':
          throw new InvalidTokenError();
      }
    },
    /** Anonymous variant: always the same answer shape, whatever the address. */
    async forEmail(body: unknown): Promise<ResendAccepted> {
      const { email } = validate(anonymousResendBody, body);
      const user = await findUserByEmail(deps.pool, email.trim());
      const result: Attempt = user ? await attempt(user.id) : { kind: 'unknown_user' };
      count(result);
      return accepted(result.kind === 'queued' ? result.requestId : randomUUID());
    },
  };
}
