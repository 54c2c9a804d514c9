import type { Pool } from '@shared/db';
import { errorMessage } from '@shared/errors';
import type { Logger } from '@shared/logger';
import { claimOutboxBatch, deletePublished, moveToDeadLetters } from '../data-access/outbox-repository';
import { publishBatch, type PartitionPublisher, type PublishOutcome } from './publish-batch';
import type { PartitionCooldown } from './partition-cooldown';
import { topicLabel, type RelayMetrics } from '../metrics';

export type RelayRound = () => Promise<number>;

/**
 * One relay round, as a story:
 * 1. claim — in one transaction, lock the oldest pending row of as many keys as possible and later rows
 *    of those keys (claimOutboxBatch explains why per-key order holds);
 * 2. publish — one produce request per partition on an idempotent producer identity that never failed;
 * 3. delete — only the rows the broker acknowledged; dead-letter the ones it rejected for good; the
 *    rest stay pending (a failed partition's rows, from its first unacknowledged one);
 * 4. commit, then count — metrics and logs only after the commit.
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
      log.error({ outbox_id: row.id, event_id: row.eventId, topic: row.topic, type: row.type, error }, 'outbox row rejected for good: dead-lettered');
    }
  };

  return async () => {
    // Connected before claiming, so no rows stay locked while a connect retries.
    await deps.producer.connect();
    const client = await pool.connect();
    let broken: Error | undefined;
    let result: { handled: number; failure?: unknown };
    try {
      await client.query('BEGIN');
      const rows = await claimOutboxBatch(client, deps.batchSize);
      if (rows.length === 0) {
        await client.query('COMMIT');
        return 0;
      }
      const outcome = await publishBatch({
        rows,
        producer: deps.producer,
        topicPrefix: deps.topicPrefix,
        cooldown: deps.cooldown,
        onSendFailed: (topic) => metrics.publishErrors.inc({ topic: topicLabel(topic) }),
      });
      const ackedAt = Date.now();
      await deletePublished(client, outcome.published.map((r) => r.id));
      await moveToDeadLetters(client, outcome.deadLettered.map((d) => ({ id: d.row.id, error: d.error })));
      await client.query('COMMIT');

      count(outcome, ackedAt);
      const handled = outcome.published.length + outcome.deadLettered.length;
      // Rows skipped for a cooling-down partition: the loop backs off and claims them again afterwards.
      const failure = outcome.failure ?? (outcome.pending.length > 0 ? new Error(`${outcome.pending.length} rows wait for a partition cooling down`) : undefined);
      result = { handled, failure };
    } catch (err) {
      // On a dead connection ROLLBACK fails too; PostgreSQL has then rolled back by itself.
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
        broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
      });
      throw err;
    } finally {
      client.release(broken);
    }
    if (result.failure !== undefined) {
      if (result.handled === 0) throw result.failure;
      log.warn({ err: { message: errorMessage(result.failure) }, handled: result.handled }, 'a partition failed: its rows stay pending, the others went out');
    }
    return result.handled;
  };
}
