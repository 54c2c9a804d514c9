import { withTransaction, type Pool } from '@shared/db';
import type { Logger } from '@shared/logger';
import { insertOutboxEvents } from '../data-access/mailer-outbox';
import { deferDueRequests } from '../data-access/requests-repository';
import type { MailerMetrics } from '../metrics';
import { deliveryStatusEvent } from './delivery-events';

/**
 * The honest status while mail cannot go out: every request recorded or found due while no
 * provider's breaker admits mail is deferred with error_class `circuit_open` and the time of the next
 * trial, and that status is published like any other. Nothing talks to SMTP; no attempt is used.
 * Returns how many requests it deferred (it works in batches of `batchSize`).
 */
export function createDeferWhileOpen(deps: {
  pool: Pool;
  metrics: Pick<MailerMetrics, 'observeSend'>;
  logger: Logger;
  clock: () => Date;
  onOutboxWritten: () => void;
  batchSize?: number;
}) {
  const log = deps.logger.child({ component: 'defer-while-open' });
  const batchSize = deps.batchSize ?? 500;
  return async function deferWhileOpen(until: Date): Promise<number> {
    let total = 0;
    for (;;) {
      const deferred = await withTransaction(deps.pool, async (client) => {
        const rows = await deferDueRequests(client, { until, limit: batchSize });
        const now = deps.clock();
        await insertOutboxEvents(
          client,
          rows.map((r) =>
            deliveryStatusEvent(
              {
                request_id: r.requestId,
                user_id: r.userId,
                status: 'deferred',
                attempt: r.attempts,
                generation: r.generation,
                error_class: 'circuit_open',
                next_attempt_at: until.toISOString(),
              },
              now,
            ),
          ),
        );
        return rows.length;
      });
      total += deferred;
      for (let i = 0; i < deferred; i++) deps.metrics.observeSend('deferred', 'circuit_open', undefined, 'none');
      if (deferred > 0) deps.onOutboxWritten();
      if (deferred < batchSize) break;
    }
    if (total > 0)
      log.warn(
        { deferred: total, next_attempt_at: until.toISOString() },
        'no SMTP provider admits mail: requests deferred until the next trial',
      );
    return total;
  };
}
