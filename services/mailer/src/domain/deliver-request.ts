import { openPayloadValue, PayloadKeyError, type PayloadKeyring } from '@shared/payload-crypto';
import type { ClaimedRequest } from '../data-access/requests-repository';
import { classifySmtpError } from './classify-smtp-error';
import { logRecordError, type DeliverContext, type DeliverDeps, type Delivery } from './deliver-context';
import type { FailoverOutcome } from './provider-failover';
import { recordFailure } from './record-failure';
import { createSentRecorder } from './record-sent';
import { renderConfirmationMail } from './render-confirmation-mail';
import { SendFailure } from './send-failure';

export type { DeliverDeps, Delivery } from './deliver-context';

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
    const mail = {
      ...renderConfirmationMail({
        to: claim.recipient,
        vars: { ...claim.vars, code: openCode(ctx.payloadKeys, claim) },
      }),
      requestId: claim.requestId,
      generation: claim.generation,
    };
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

/**
 * One attempt at one claimed request: render and send through the breakers; it resolves when SMTP
 * answered, with the outcome's recording still running (`recorded`), so the SMTP connection serves the
 * next mail meanwhile. An accepted mail goes to the group-commit recorder (its row `sent` and its
 * status event in one transaction with those of the other mails accepted meanwhile); a failure is
 * recorded on its own (deferred or failed, with its status and DLQ record). The row is already
 * `sending`; if the mailer dies between SMTP acceptance and that commit, the row's lease expires and
 * the next attempt is counted as a possible duplicate: that is the one duplicate window.
 */
export function createDeliverRequest(deps: DeliverDeps): (claim: ClaimedRequest) => Promise<Delivery> {
  const ctx: DeliverContext = { ...deps, log: deps.logger.child({ component: 'deliver' }) };
  const sentRecorder = createSentRecorder(ctx);
  return async function deliverRequest(claim: ClaimedRequest): Promise<Delivery> {
    const outcome = await attemptSend(ctx, claim);
    reportEarlierProviders(ctx, claim, outcome);
    if (!outcome.ok) {
      const seconds = outcome.tries.at(-1)?.seconds;
      return {
        recorded: recordFailure(ctx, claim, outcome, seconds).catch((err: unknown) => logRecordError(ctx, claim, err)),
      };
    }
    // Accepted by SMTP: from here on, a failure to record must never turn into a retry decision.
    return { recorded: sentRecorder.record(claim, outcome) };
  };
}
