import { errorMessage } from '@shared/errors';
import { openPayloadValue, PayloadKeyError, type PayloadKeyring } from '@shared/payload-crypto';
import type { ClaimedRequest } from '../data-access/requests-repository';
import { classifySmtpError } from './classify-smtp-error';
import type { DeliverContext, DeliverDeps } from './deliver-context';
import type { FailoverOutcome } from './provider-failover';
import { recordFailure } from './record-failure';
import { recordSent } from './record-sent';
import { renderConfirmationMail } from './render-confirmation-mail';
import { SendFailure } from './send-failure';

export type { DeliverDeps } from './deliver-context';

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

/** Render and send through the providers' breakers; a mail rendering refuses becomes a failed outcome. */
async function attemptSend(ctx: DeliverContext, claim: ClaimedRequest): Promise<FailoverOutcome> {
  try {
    const mail = renderConfirmationMail({
      to: claim.recipient,
      vars: { ...claim.vars, code: openCode(ctx.payloadKeys, claim) },
    });
    return await ctx.failover.send(mail);
  } catch (err) {
    // Rendering refused the request (e.g. an address that would inject a header): no SMTP attempt.
    const failure: SendFailure = classifySmtpError(err);
    return { ok: false, failure, provider: null, tries: [], nextAdmitAt: undefined };
  }
}

/** Providers that failed before the last one: each moved the mail on to the next at once. */
function reportEarlierProviders(ctx: DeliverContext, claim: ClaimedRequest, outcome: FailoverOutcome): void {
  const earlier = outcome.ok ? outcome.tries : outcome.tries.slice(0, -1);
  for (const t of earlier) {
    ctx.metrics.observeSend('deferred', t.errorClass ?? 'unknown', t.seconds, t.provider);
    ctx.log.warn(
      { request_id: claim.requestId, attempt: claim.attempts, provider: t.provider, error_class: t.errorClass },
      'SMTP provider failed: trying the next one',
    );
  }
}

/** PostgreSQL unavailable: the row stays `sending` and comes back when its lease expires. */
function logRecordError(ctx: DeliverContext, claim: ClaimedRequest, err: unknown): void {
  ctx.log.error(
    { request_id: claim.requestId, err: { message: errorMessage(err) } },
    'could not record the outcome; the lease will bring it back',
  );
}

/**
 * One attempt at one claimed request: render, send through the breaker, then record the outcome and
 * its status event in one transaction. The row is already `sending`; if the mailer dies between SMTP
 * acceptance and this commit, the row's lease expires and the next attempt is counted as a possible
 * duplicate: that is the one duplicate window.
 */
export function createDeliverRequest(deps: DeliverDeps): (claim: ClaimedRequest) => Promise<void> {
  const ctx: DeliverContext = { ...deps, log: deps.logger.child({ component: 'deliver' }) };
  return async function deliverRequest(claim: ClaimedRequest): Promise<void> {
    const outcome = await attemptSend(ctx, claim);
    reportEarlierProviders(ctx, claim, outcome);
    const onRecordError = (recordErr: unknown) => logRecordError(ctx, claim, recordErr);
    if (!outcome.ok) {
      await recordFailure(ctx, claim, outcome, outcome.tries.at(-1)?.seconds).catch(onRecordError);
      return;
    }
    // Accepted by SMTP: from here on, a failure to record must never turn into a retry decision.
    await recordSent(ctx, claim, outcome, outcome.seconds).catch(onRecordError);
  };
}
