import { randomUUID } from 'node:crypto';
import { withTransaction } from '@shared/db';
import { errorMessage } from '@shared/errors';
import type { Queryable } from '../data-access/queryable';
import { readConfirmationHistory, supersedePendingConfirmations } from '../data-access/confirmations-repository';
import { insertOutboxEvents } from '../data-access/outbox-repository';
import { findUserByEmail, lockUser } from '../data-access/users-repository';
import { createConfirmationRequest } from './confirmation-request';
import type { DomainDeps } from './deps';
import { AlreadyConfirmedError, InvalidTokenError, ResendCooldownError } from './errors';
import { decideResend } from './resend-policy';
import { anonymousResendBody, validate } from './schemas';

/** Anonymous resends whose transaction may run after the response (see forEmail). */
const MAX_BACKGROUND_RESENDS = 64;

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
  const accepted = (requestId: string): ResendAccepted => ({
    email_confirmation: { request_id: requestId, status: 'queued' },
    retry_after_s: limits.cooldownS,
  });

  const attempt = (userId: string, chosenRequestId?: string): Promise<Attempt> =>
    withTransaction(deps.pool, async (client: Queryable): Promise<Attempt> => {
      const user = await lockUser(client, userId);
      if (!user) return { kind: 'unknown_user' };
      if (user.email_confirmed_at) return { kind: 'already_confirmed' };
      const now = deps.clock.now();
      const decision = decideResend(await readConfirmationHistory(client, userId, now), limits, now);
      if (!decision.allowed) return { kind: 'limited', reason: decision.reason, retryAfterS: decision.retryAfterS };
      await supersedePendingConfirmations(client, user.id);
      const { requestId, mailRequested } = await createConfirmationRequest(
        client,
        user,
        { now, codeTtlS: deps.config.CONFIRMATION_CODE_TTL_S, payloadKeys: deps.payloadKeys },
        chosenRequestId,
      );
      await insertOutboxEvents(client, [mailRequested]);
      return { kind: 'queued', requestId };
    });

  const count = (a: Attempt) =>
    deps.metrics.resends.inc({
      result: a.kind === 'limited' ? a.reason : a.kind === 'unknown_user' ? 'ignored' : a.kind,
    });

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
    /**
     * Anonymous variant: the same answer, in the same time, whatever the address. Before answering it
     * waits only for the lookup — one indexed SELECT whatever the address — so PostgreSQL being down is
     * a 503 here, not a 202 for a resend that never happens (guarantee 8). The resend itself goes out
     * AFTER the answer: for an existing unconfirmed account it is a committed transaction (row lock,
     * inserts, WAL flush), and no amount of dummy work for unknown addresses would cost the same as a
     * commit under every load. The request id is chosen up front and used if a mail is queued; a
     * failure after the answer is logged, since no client is left to tell. Under a flood
     * (MAX_BACKGROUND_RESENDS in flight) the resend runs before the answer again, and its failure is
     * the client's: backpressure matters more than timing when the timing is drowned in load anyway.
     */
    async forEmail(body: unknown): Promise<ResendAccepted> {
      const { email } = validate(anonymousResendBody, body);
      const requestId = randomUUID();
      const user = await findUserByEmail(deps.pool, email.trim());
      if (!user) {
        count({ kind: 'unknown_user' });
        return accepted(requestId);
      }
      const work = attempt(user.id, requestId).then(count);
      if (deps.background.inFlight() >= MAX_BACKGROUND_RESENDS) {
        await work;
        return accepted(requestId);
      }
      deps.background.track(
        work.catch((err: unknown) => {
          deps.logger.error({ err: { message: errorMessage(err) } }, 'anonymous resend failed after the response');
        }),
      );
      return accepted(requestId);
    },
  };
}
