import { errorMessage } from '@shared/errors';
import { withTransaction, type Pool, type PoolClient } from '@shared/db';
import type { ErrorClass } from '@shared/events';
import type { Logger } from '@shared/logger';
import type { PayloadKeyring } from '@shared/payload-crypto';
import type { MailerConfig } from '../config';
import { insertOutboxEvents, type OutboxEvent } from '../data-access/mailer-outbox';
import type { ClaimedRequest } from '../data-access/requests-repository';
import type { MailerMetrics } from '../metrics';
import { deliveryStatusEvent } from './delivery-events';
import type { ProviderFailover } from './provider-failover';

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

/** What recording one attempt's outcome needs: the dependencies and the deliver component's logger. */
export type DeliverContext = DeliverDeps & { log: Logger };

/**
 * One attempt once SMTP answered: the SMTP connection is free again, while its outcome is still being
 * recorded. `recorded` settles when the outcome committed or its recording failed and was logged.
 */
export type Delivery = { recorded: Promise<void> };

/** PostgreSQL unavailable: the row stays `sending` and comes back when its lease expires. */
export function logRecordError(ctx: DeliverContext, claim: ClaimedRequest, err: unknown): void {
  ctx.log.error(
    { request_id: claim.requestId, err: { message: errorMessage(err) } },
    'could not record the outcome; the lease will bring it back',
  );
}

/**
 * Records an outcome with `record` and, only when the claim still held, its events, in one
 * transaction; then wakes the status publisher. False: the claim was lost to another instance.
 */
export async function commitOutcome(
  ctx: DeliverContext,
  events: OutboxEvent[],
  record: (client: PoolClient) => Promise<boolean>,
): Promise<boolean> {
  const recorded = await withTransaction(ctx.pool, async (client) => {
    const ok = await record(client);
    if (ok) await insertOutboxEvents(client, events);
    return ok;
  });
  if (recorded) ctx.onOutboxWritten();
  return recorded;
}

export type StatusExtra = { smtpMessageId?: string; provider?: string | null; nextAttemptAt?: Date };

/** The mail-delivery-status event of one claimed request. */
export function statusEvent(
  ctx: DeliverContext,
  claim: ClaimedRequest,
  status: 'sent' | 'deferred' | 'failed',
  attempt: number,
  errorClass: ErrorClass | null,
  extra: StatusExtra = {},
): OutboxEvent {
  return deliveryStatusEvent(
    {
      request_id: claim.requestId,
      user_id: claim.userId,
      status,
      attempt,
      error_class: errorClass,
      generation: claim.generation,
      ...(extra.smtpMessageId !== undefined ? { smtp_message_id: extra.smtpMessageId } : {}),
      ...(extra.provider ? { provider: extra.provider } : {}),
      ...(extra.nextAttemptAt !== undefined ? { next_attempt_at: extra.nextAttemptAt.toISOString() } : {}),
    },
    ctx.clock(),
  );
}
