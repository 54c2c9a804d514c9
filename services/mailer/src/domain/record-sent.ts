import { markSent } from '../data-access/attempt-outcomes';
import type { ClaimedRequest } from '../data-access/requests-repository';
import { commitOutcome, statusEvent, type DeliverContext } from './deliver-context';
import type { FailoverOutcome } from './provider-failover';

/**
 * SMTP accepted the mail: mark the row sent with its `sent` status event. A claim lost meanwhile
 * (lease expired) means another instance may send it again: counted as a possible duplicate.
 */
export async function recordSent(
  ctx: DeliverContext,
  claim: ClaimedRequest,
  sent: Extract<FailoverOutcome, { ok: true }>,
  seconds: number,
): Promise<void> {
  const messageId = sent.result.messageId;
  const event = statusEvent(ctx, claim, 'sent', claim.attempts, null, {
    smtpMessageId: messageId,
    provider: sent.provider,
  });
  const recorded = await commitOutcome(ctx, [event], (client) =>
    markSent(client, claim, messageId, sent.possibleDuplicate),
  );
  if (!recorded) {
    ctx.log.warn(
      { request_id: claim.requestId, attempt: claim.attempts },
      'sent, but the claim was lost to another instance (lease expired): possible duplicate',
    );
    ctx.metrics.countDuplicateSend();
    return;
  }
  ctx.metrics.observeSend('sent', 'none', seconds, sent.provider);
  const since = claim.requestedAt ?? claim.receivedAt;
  ctx.metrics.observeEndToEnd((ctx.clock().getTime() - since.getTime()) / 1000);
  const possibleDuplicate = claim.possibleDuplicate || sent.possibleDuplicate;
  if (possibleDuplicate) ctx.metrics.countDuplicateSend();
  ctx.log.info(
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
}
