import { withTransaction, type Pool } from '@shared/db';
import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import {
  claimedRows,
  claimStatement,
  deletePublishedSql,
  moveToDeadLetters,
  type RawRow,
} from '../data-access/outbox-repository';
import { publishBatch, type PartitionPublisher, type PublishOutcome } from './publish-batch';
import type { PartitionCooldown } from './partition-cooldown';
import { topicLabel, type RelayMetrics } from '../metrics';

export type RelayRound = () => Promise<number>;

type Done = { outcome: PublishOutcome; ackedAt: number };

/**
 * One relay round, as a story:
 * 1. claim — in one transaction, lock the oldest pending row of as many keys as possible and later rows
 *    of those keys (the claim's SQL in outbox-repository.ts explains why per-key order holds), sent
 *    with the BEGIN;
 * 2. publish — one produce request per partition on an idempotent producer identity that never failed;
 * 3. delete — only the rows the broker acknowledged; dead-letter the ones it rejected for good; the
 *    rest stay pending (a failed partition's rows, from its first unacknowledged one);
 * 4. commit (withTransaction; the delete goes with the COMMIT, one round trip), then count — metrics
 *    and logs only after the commit.
 * Returns the rows handled (published + dead-lettered); throws when rows were left pending and nothing at
 * all was handled, so the loop backs off and tries them again.
 */
export function createRelayRound(deps: {
  pool: Pool;
  producer: PartitionPublisher;
  cooldown: PartitionCooldown;
  metrics: RelayMetrics;
  logger: Logger;
  batchSize: number;
  topicPrefix: string;
}): RelayRound {
  const { pool, metrics, logger: log } = deps;

  const count = (outcome: PublishOutcome, ackedAt: number): void => {
    for (const row of outcome.published) {
      const topic = topicLabel(row.topic);
      metrics.published.inc({ topic });
      metrics.commitToPublish.observe({ topic }, Math.max(0, ackedAt - row.createdAtMs) / 1000);
    }
    for (const { row, error } of outcome.deadLettered) {
      metrics.deadLetters.inc({ topic: topicLabel(row.topic) });
      log.error(
        { outbox_id: row.id, event_id: row.eventId, topic: row.topic, type: row.type, error },
        'outbox row rejected for good: dead-lettered',
      );
    }
  };

  return async () => {
    // Connected before claiming, so no rows stay locked while a connect retries.
    await deps.producer.connect();
    // Claim, publish and delete in one transaction: the claim's row locks are held until the delete
    // commits; a throw rolls back (the rows stay pending) and a broken client is released with its error.
    // Three round trips: BEGIN with the claim, produce, the delete with the COMMIT.
    const done = await withTransaction<Done | undefined, RawRow>(
      pool,
      async (client, tx) => {
        const rows = claimedRows(tx.first);
        if (rows.length === 0) return undefined;
        const outcome = await publishBatch({
          rows,
          producer: deps.producer,
          topicPrefix: deps.topicPrefix,
          cooldown: deps.cooldown,
          onSendFailed: (topic) => metrics.publishErrors.inc({ topic: topicLabel(topic) }),
        });
        const ackedAt = Date.now();
        await moveToDeadLetters(
          client,
          outcome.deadLettered.map((d) => ({ id: d.row.id, error: d.error })),
        );
        if (outcome.published.length > 0) tx.finishWith(deletePublishedSql(outcome.published.map((r) => r.id)));
        return { outcome, ackedAt };
      },
      { beginWith: claimStatement(deps.batchSize) },
    );
    if (done === undefined) return 0;

    const { outcome, ackedAt } = done;
    count(outcome, ackedAt);
    const handled = outcome.published.length + outcome.deadLettered.length;
    // Rows skipped for a cooling-down partition: the loop backs off and claims them again afterwards.
    const cooling = outcome.pending.length;
    const failure =
      outcome.failure ?? (cooling > 0 ? new Error(`${cooling} rows wait for a partition cooling down`) : undefined);
    if (failure !== undefined) {
      if (handled === 0) throw failure;
      log.warn(
        { err: { message: errorMessage(failure) }, handled },
        'a partition failed: its rows stay pending, the others went out',
      );
    }
    return handled;
  };
}
