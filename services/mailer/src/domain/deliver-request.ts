import { withTransaction, type Pool, type PoolClient } from '@shared/db';
import { errorMessage } from '@shared/errors';
import type { ErrorClass } from '@shared/events';
import type { Logger } from '@shared/logger';
import { openPayloadValue, PayloadKeyError, type PayloadKeyring } from '@shared/payload-crypto';
import type { MailerConfig } from '../config';
import { insertOutboxEvents } from '../data-access/mailer-outbox';
import { markDeferred, markFailed, markSent, type ClaimedRequest } from '../data-access/requests-repository';
import type { MailerMetrics } from '../metrics';
import { classifySmtpError } from './classify-smtp-error';
import type { OutboxEvent } from '../data-access/mailer-outbox';
import type { FailoverOutcome, ProviderFailover } from './provider-failover';
import { deliveryStatusEvent, dlqRecordEvent } from './delivery-events';
import { renderConfirmationMail } from './render-confirmation-mail';
import { retryDelayMs } from './retry-schedule';
import { SendFailure } from './send-failure';

export type DeliverDeps = {
  pool: Pool;
  failover: Pick<ProviderFailover, 'send'>;
  config: Pick<
    MailerConfig,
    'MAIL_MAX_ATTEMPTS' | 'MAIL_RETRY_BASE_MS' | 'MAIL_RETRY_MAX_MS' | 'BREAKER_RESET_TIMEOUT_MS'
  >;
  metrics: MailerMetrics;
  logger: Logger;
  clock: () => Date;
  random: () => number;
  /** Called after an outcome and its events committed: wakes the status publisher. */
  onOutboxWritten: () => void;
  /** Opens the sealed code (MAIL_PAYLOAD_KEY, MAIL_PAYLOAD_KEYS). */
  payloadKeys: PayloadKeyring;
};

/**
 * The code in clear, only for rendering. A code sealed under a key this mailer does not have (or
 * altered) never improves on retry: a permanent failure, so the request goes to the DLQ (still sealed)
 * and can be replayed once the key is configured.
 */
function openCode(keys: PayloadKeyring, claim: ClaimedRequest): string {
  try {
    return openPayloadValue(keys, claim.vars.code, claim.requestId);
  } catch (err) {
    if (err instanceof PayloadKeyError)
      throw new SendFailure('unknown', false, `cannot open the confirmation code: ${err.message}`);
    throw err;
  }
}

/**
 * One attempt at one claimed request: render, send through the breaker, then record the outcome and
 * its status event in one transaction. The row is already `sending`; if the mailer dies between SMTP
 * acceptance and this commit, the row's lease expires and the next attempt is counted as a possible
 * duplicate: that is the one duplicate window.
 */
export function createDeliverRequest(deps: DeliverDeps): (claim: ClaimedRequest) => Promise<void> {
  const log = deps.logger.child({ component: 'deliver' });
  const { config } = deps;

  const commit = async (events: OutboxEvent[], record: (client: PoolClient) => Promise<boolean>): Promise<boolean> => {
    const recorded = await withTransaction(deps.pool, async (client) => {
      const ok = await record(client);
      if (ok) await insertOutboxEvents(client, events);
      return ok;
    });
    if (recorded) deps.onOutboxWritten();
    return recorded;
  };

  type Extra = { smtpMessageId?: string; provider?: string | null; nextAttemptAt?: Date };
  const status = (
    claim: ClaimedRequest,
    s: 'sent' | 'deferred' | 'failed',
    attempt: number,
    errorClass: ErrorClass | null,
    extra: Extra = {},
  ) =>
    deliveryStatusEvent(
      {
        request_id: claim.requestId,
        user_id: claim.userId,
        status: s,
        attempt,
        error_class: errorClass,
        generation: claim.generation,
        ...(extra.smtpMessageId !== undefined ? { smtp_message_id: extra.smtpMessageId } : {}),
        ...(extra.provider ? { provider: extra.provider } : {}),
        ...(extra.nextAttemptAt !== undefined ? { next_attempt_at: extra.nextAttemptAt.toISOString() } : {}),
      },
      deps.clock(),
    );

  const onSent = async (claim: ClaimedRequest, sent: Extract<FailoverOutcome, { ok: true }>, seconds: number) => {
    const messageId = sent.result.messageId;
    const event = status(claim, 'sent', claim.attempts, null, { smtpMessageId: messageId, provider: sent.provider });
    const recorded = await commit([event], (client) => markSent(client, claim, messageId));
    if (!recorded) {
      log.warn(
        { request_id: claim.requestId, attempt: claim.attempts },
        'sent, but the claim was lost to another instance (lease expired): possible duplicate',
      );
      deps.metrics.countDuplicateSend();
      return;
    }
    deps.metrics.observeSend('sent', 'none', seconds, sent.provider);
    const since = claim.requestedAt ?? claim.receivedAt;
    deps.metrics.observeEndToEnd((deps.clock().getTime() - since.getTime()) / 1000);
    const possibleDuplicate = claim.possibleDuplicate || sent.possibleDuplicate;
    if (possibleDuplicate) deps.metrics.countDuplicateSend();
    log.info(
      {
        request_id: claim.requestId,
        user_id: claim.userId,
        attempt: claim.attempts,
        result: 'sent',
        provider: sent.provider,
        smtp_message_id: messageId,
        smtp_response: sent.result.response,
        possible_duplicate: possibleDuplicate,
      },
      'mail sent',
    );
  };

  const onFailure = async (
    claim: ClaimedRequest,
    outcome: Extract<FailoverOutcome, { ok: false }>,
    seconds: number | undefined,
  ) => {
    const { failure } = outcome;
    const provider = outcome.provider ?? 'none';
    const logFields = {
      request_id: claim.requestId,
      user_id: claim.userId,
      attempt: claim.attempts,
      error_class: failure.errorClass,
      provider,
      smtp_response: failure.detail,
    };

    const retry =
      failure.retriable && (failure.errorClass === 'circuit_open' || claim.attempts < config.MAIL_MAX_ATTEMPTS);
    if (retry) {
      // An attempt no breaker admitted never reached SMTP: it is given back and waits for the first
      // provider's half-open trial.
      const consumeAttempt = failure.errorClass !== 'circuit_open';
      const untilAdmitted = outcome.nextAdmitAt
        ? Math.max(0, outcome.nextAdmitAt.getTime() - deps.clock().getTime())
        : config.BREAKER_RESET_TIMEOUT_MS;
      const delayMs = consumeAttempt
        ? retryDelayMs(
            claim.attempts,
            { baseMs: config.MAIL_RETRY_BASE_MS, maxMs: config.MAIL_RETRY_MAX_MS },
            deps.random,
          )
        : untilAdmitted;
      const nextAttemptAt = new Date(deps.clock().getTime() + delayMs);
      let row: Awaited<ReturnType<typeof markDeferred>> = null;
      const recorded = await withTransaction(deps.pool, async (client) => {
        row = await markDeferred(client, claim, {
          errorClass: failure.errorClass,
          delayMs,
          consumeAttempt,
          mayHaveBeenAccepted: failure.mayHaveBeenAccepted,
        });
        if (!row) return false;
        const event =
          row.state === 'superseded'
            ? status(claim, 'failed', row.attempts, null)
            : status(claim, 'deferred', row.attempts, failure.errorClass, { nextAttemptAt });
        await insertOutboxEvents(client, [event]);
        return true;
      });
      if (!recorded || !row) {
        log.warn(logFields, 'attempt failed, but the claim was lost to another instance');
        return;
      }
      deps.onOutboxWritten();
      deps.metrics.observeSend('deferred', failure.errorClass, seconds, provider);
      const final = row as { state: 'pending' | 'superseded'; attempts: number };
      if (final.state === 'superseded') {
        deps.metrics.countSuperseded(1);
        log.info(logFields, 'attempt failed and a newer request replaced this one: superseded');
      } else {
        log.warn({ ...logFields, retry_in_ms: delayMs }, 'mail deferred');
      }
      return;
    }

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
      deps.clock(),
    );
    const event = status(claim, 'failed', claim.attempts, failure.errorClass, { provider: outcome.provider });
    const recorded = await commit([event, dlq], (client) => markFailed(client, claim, failure.errorClass));
    if (!recorded) {
      log.warn(logFields, 'attempt failed, but the claim was lost to another instance');
      return;
    }
    deps.metrics.observeSend('failed', failure.errorClass, seconds, provider);
    deps.metrics.countDlqRecord(reason);
    log.error({ ...logFields, reason }, 'mail failed: parked on the DLQ');
  };

  return async function deliverRequest(claim: ClaimedRequest): Promise<void> {
    let outcome: FailoverOutcome;
    try {
      const mail = renderConfirmationMail({
        to: claim.recipient,
        vars: { ...claim.vars, code: openCode(deps.payloadKeys, claim) },
      });
      outcome = await deps.failover.send(mail);
    } catch (err) {
      // Rendering refused the request (e.g. an address that would inject a header): no SMTP attempt.
      const failure: SendFailure = classifySmtpError(err);
      outcome = { ok: false, failure, provider: null, tries: [], nextAdmitAt: undefined };
    }
    // Providers that failed before the last one: each moved the mail on to the next at once.
    const earlier = outcome.ok ? outcome.tries : outcome.tries.slice(0, -1);
    for (const t of earlier) {
      deps.metrics.observeSend('deferred', t.errorClass ?? 'unknown', t.seconds, t.provider);
      log.warn(
        { request_id: claim.requestId, attempt: claim.attempts, provider: t.provider, error_class: t.errorClass },
        'SMTP provider failed: trying the next one',
      );
    }
    if (!outcome.ok) {
      const seconds = outcome.tries.at(-1)?.seconds;
      await onFailure(claim, outcome, seconds).catch((recordErr: unknown) => logRecordError(claim, recordErr));
      return;
    }
    // Accepted by SMTP: from here on, a failure to record must never turn into a retry decision.
    await onSent(claim, outcome, outcome.seconds).catch((recordErr: unknown) => logRecordError(claim, recordErr));
  };

  function logRecordError(claim: ClaimedRequest, err: unknown): void {
    // PostgreSQL unavailable: the row stays `sending` and comes back when its lease expires.
    log.error(
      { request_id: claim.requestId, err: { message: errorMessage(err) } },
      'could not record the outcome; the lease will bring it back',
    );
  }
}
