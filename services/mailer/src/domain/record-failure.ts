import { withTransaction } from '@shared/db';
import { insertOutboxEvents } from '../data-access/mailer-outbox';
import { markDeferred, markFailed } from '../data-access/attempt-outcomes';
import type { ClaimedRequest } from '../data-access/requests-repository';
import { commitOutcome, statusEvent, type DeliverContext } from './deliver-context';
import { dlqRecordEvent } from './delivery-events';
import type { FailoverOutcome } from './provider-failover';
import { retryDelayMs } from './retry-schedule';

type Failed = Extract<FailoverOutcome, { ok: false }>;
type LogFields = ReturnType<typeof failureLogFields>;

function failureLogFields(claim: ClaimedRequest, outcome: Failed) {
  return {
    request_id: claim.requestId,
    user_id: claim.userId,
    attempt: claim.attempts,
    error_class: outcome.failure.errorClass,
    provider: outcome.provider ?? 'none',
    smtp_response: outcome.failure.detail,
  };
}

/**
 * The attempt failed: a retriable failure with attempts left (or one no breaker admitted) is deferred
 * to a later attempt; anything else fails the request and parks it on the DLQ.
 */
export async function recordFailure(
  ctx: DeliverContext,
  claim: ClaimedRequest,
  outcome: Failed,
  seconds: number | undefined,
): Promise<void> {
  const { failure } = outcome;
  const logFields = failureLogFields(claim, outcome);
  const retry =
    failure.retriable && (failure.errorClass === 'circuit_open' || claim.attempts < ctx.config.MAIL_MAX_ATTEMPTS);
  if (retry) await deferRetry(ctx, claim, outcome, seconds, logFields);
  else await parkOnDlq(ctx, claim, outcome, seconds, logFields);
}

/**
 * When the next attempt is due. An attempt no breaker admitted never reached SMTP: it is given back
 * and waits for the first provider's half-open trial.
 */
function nextAttempt(
  ctx: DeliverContext,
  claim: ClaimedRequest,
  outcome: Failed,
): { delayMs: number; consumeAttempt: boolean } {
  const { config } = ctx;
  const consumeAttempt = outcome.failure.errorClass !== 'circuit_open';
  const untilAdmitted = outcome.nextAdmitAt
    ? Math.max(0, outcome.nextAdmitAt.getTime() - ctx.clock().getTime())
    : config.BREAKER_RESET_TIMEOUT_MS;
  const delayMs = consumeAttempt
    ? retryDelayMs(claim.attempts, { baseMs: config.MAIL_RETRY_BASE_MS, maxMs: config.MAIL_RETRY_MAX_MS }, ctx.random)
    : untilAdmitted;
  return { delayMs, consumeAttempt };
}

/** Back to `pending` with a `deferred` status, or `superseded` (failed) when a newer request replaced it. */
async function deferRetry(
  ctx: DeliverContext,
  claim: ClaimedRequest,
  outcome: Failed,
  seconds: number | undefined,
  logFields: LogFields,
): Promise<void> {
  const { failure } = outcome;
  const { delayMs, consumeAttempt } = nextAttempt(ctx, claim, outcome);
  const nextAttemptAt = new Date(ctx.clock().getTime() + delayMs);
  const row = await withTransaction(ctx.pool, async (client) => {
    const marked = await markDeferred(client, claim, {
      errorClass: failure.errorClass,
      delayMs,
      consumeAttempt,
      mayHaveBeenAccepted: failure.mayHaveBeenAccepted,
    });
    if (!marked) return null;
    const event =
      marked.state === 'superseded'
        ? statusEvent(ctx, claim, 'failed', marked.attempts, null)
        : statusEvent(ctx, claim, 'deferred', marked.attempts, failure.errorClass, { nextAttemptAt });
    await insertOutboxEvents(client, [event]);
    return marked;
  });
  if (!row) {
    ctx.log.warn(logFields, 'attempt failed, but the claim was lost to another instance');
    return;
  }
  ctx.onOutboxWritten();
  ctx.metrics.observeSend('deferred', failure.errorClass, seconds, logFields.provider);
  if (row.state === 'superseded') {
    ctx.metrics.countSuperseded(1);
    ctx.log.info(logFields, 'attempt failed and a newer request replaced this one: superseded');
  } else {
    ctx.log.warn({ ...logFields, retry_in_ms: delayMs }, 'mail deferred');
  }
}

/** `failed` with its status event and the DLQ record (the original, still sealed), in one transaction. */
async function parkOnDlq(
  ctx: DeliverContext,
  claim: ClaimedRequest,
  outcome: Failed,
  seconds: number | undefined,
  logFields: LogFields,
): Promise<void> {
  const { failure } = outcome;
  const reason = failure.retriable ? 'retries_exhausted' : 'rejected';
  const dlq = dlqRecordEvent(
    {
      reason,
      error: failure.detail,
      errorClass: failure.errorClass,
      original: claim.original,
      requestId: claim.requestId,
      userId: claim.userId,
      attempts: claim.attempts,
    },
    ctx.clock(),
  );
  const event = statusEvent(ctx, claim, 'failed', claim.attempts, failure.errorClass, { provider: outcome.provider });
  const recorded = await commitOutcome(ctx, [event, dlq], (client) => markFailed(client, claim, failure.errorClass));
  if (!recorded) {
    ctx.log.warn(logFields, 'attempt failed, but the claim was lost to another instance');
    return;
  }
  ctx.metrics.observeSend('failed', failure.errorClass, seconds, logFields.provider);
  ctx.metrics.countDlqRecord(reason);
  ctx.log.error({ ...logFields, reason }, 'mail failed: parked on the DLQ');
}
