import { markSentBatch } from '../data-access/attempt-outcomes';
import type { ClaimedRequest } from '../data-access/requests-repository';
import { logRecordError, statusEvent, type DeliverContext } from './deliver-context';
import { createPacer } from './pace';
import type { FailoverOutcome } from './provider-failover';

export type Sent = Extract<FailoverOutcome, { ok: true }>;
type Accepted = { claim: ClaimedRequest; sent: Sent; done: () => void };

export type SentRecorder = {
  /** Settles once the outcome is recorded, or its recording failed and was logged; never rejects. */
  record: (claim: ClaimedRequest, sent: Sent) => Promise<void>;
};

/** SQLSTATE 40P01: PostgreSQL aborted the statement to break a lock cycle; nothing of it was written. */
const isDeadlock = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === '40P01';

/**
 * Group commit of accepted mails. Every outcome queued when a flush starts is recorded by ONE statement
 * (markSentBatch: rows marked `sent` where the claim still holds, and their `sent` status events, in one
 * transaction); outcomes arriving meanwhile wait for the next flush. One flush at a time, at most one
 * every `minIntervalMs` (5 ms: a group-commit delay, as PostgreSQL's commit_delay). A flush that
 * fails (PostgreSQL down) fails each of its outcomes exactly as one mail's recording failed before:
 * logged, the row stays `sending`, its lease brings it back as a possible duplicate — never dropped
 * silently, never a retry decision after SMTP accepted. A deadlock (nothing written) is retried once.
 */
export function createSentRecorder(
  ctx: DeliverContext,
  opts: { maxBatch?: number; minIntervalMs?: number } = {},
): SentRecorder {
  const maxBatch = opts.maxBatch ?? 500;
  const pace = createPacer(opts.minIntervalMs ?? 5);
  const waiting: Accepted[] = [];
  let flushing = false;

  const run = async (): Promise<void> => {
    while (waiting.length > 0) {
      await pace();
      const batch = waiting.splice(0, maxBatch);
      await flush(ctx, batch);
      for (const a of batch) a.done();
    }
    flushing = false;
  };

  return {
    record: (claim, sent) =>
      new Promise<void>((done) => {
        waiting.push({ claim, sent, done });
        if (flushing) return;
        flushing = true;
        void run();
      }),
  };
}

async function flush(ctx: DeliverContext, batch: Accepted[]): Promise<void> {
  const marks = batch.map(({ claim, sent }) => ({
    requestId: claim.requestId,
    claimId: claim.claimId,
    smtpMessageId: sent.result.messageId,
    possibleDuplicate: sent.possibleDuplicate,
    status: statusEvent(ctx, claim, 'sent', claim.attempts, null, {
      smtpMessageId: sent.result.messageId,
      provider: sent.provider,
    }),
  }));
  let marked: Set<string>;
  try {
    marked = await markSentBatch(ctx.pool, marks).catch((err: unknown) => {
      if (isDeadlock(err)) return markSentBatch(ctx.pool, marks);
      throw err;
    });
  } catch (err) {
    for (const { claim } of batch) logRecordError(ctx, claim, err);
    return;
  }
  if (marked.size > 0) ctx.onOutboxWritten();
  for (const a of batch) report(ctx, a, marked.has(a.claim.claimId));
}

/**
 * Metrics and logs of one recorded outcome. A claim lost meanwhile (lease expired) means another
 * instance may send the mail again: counted and logged as a possible duplicate. A plain success is
 * logged at debug only (no per-mail info line on the hot path); a possible duplicate at info.
 */
function report(ctx: DeliverContext, { claim, sent }: Accepted, held: boolean): void {
  if (!held) {
    ctx.log.warn(
      { request_id: claim.requestId, attempt: claim.attempts },
      'sent, but the claim was lost to another instance (lease expired): possible duplicate',
    );
    ctx.metrics.countDuplicateSend();
    return;
  }
  ctx.metrics.observeSend('sent', 'none', sent.seconds, sent.provider);
  const since = claim.requestedAt ?? claim.receivedAt;
  ctx.metrics.observeEndToEnd((ctx.clock().getTime() - since.getTime()) / 1000);
  const possibleDuplicate = claim.possibleDuplicate || sent.possibleDuplicate;
  if (possibleDuplicate) ctx.metrics.countDuplicateSend();
  const fields = {
    request_id: claim.requestId,
    user_id: claim.userId,
    attempt: claim.attempts,
    result: 'sent',
    provider: sent.provider,
    smtp_message_id: sent.result.messageId,
    smtp_response: sent.result.response,
    possible_duplicate: possibleDuplicate,
  };
  if (possibleDuplicate) ctx.log.info(fields, 'mail sent');
  else ctx.log.debug(fields, 'mail sent');
}
