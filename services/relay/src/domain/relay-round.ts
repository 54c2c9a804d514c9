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
 * 2. publish — one produce request per partition leader on an idempotent producer identity that never
 *    failed, each partition acknowledged or failed on its own;
 * 3. delete — only the rows the broker acknowledged; dead-letter the ones it rejected for good; the
 *    rest stay pending (a failed partition's rows, from its first unacknowledged one);
 * 4. commit (withTransaction; the delete goes with the COMMIT, one round trip, and the commit does not
 *    wait for its WAL flush), then count — metrics and logs only after the commit.
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

  const count = createRoundCounter(metrics, log);

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
      // The delete commits without waiting for its WAL flush: a PostgreSQL crash that undoes it brings
      // the rows back to be published again (duplicates, in order), never loses one.
      { beginWith: claimStatement(deps.batchSize), asynchronousCommit: true },
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

/**
 * Counts a round's outcome, after its commit: published rows (and their insert → ack latency) per topic,
 * dead letters with a log line each. The published counter moves once per run of a topic's rows, not per
 * row; the histogram still takes one observation per row (prom-client checks the child's labels on each).
 */
export function createRoundCounter(
  metrics: RelayMetrics,
  log: Logger,
): (outcome: PublishOutcome, ackedAt: number) => void {
  type Series = {
    published: ReturnType<RelayMetrics['published']['labels']>;
    latency: ReturnType<RelayMetrics['commitToPublish']['labels']>;
  };
  const series = new Map<string, Series>();
  const seriesOf = (rowTopic: string) => {
    let s = series.get(rowTopic);
    if (s === undefined) {
      const topic = topicLabel(rowTopic);
      s = { published: metrics.published.labels({ topic }), latency: metrics.commitToPublish.labels({ topic }) };
      series.set(rowTopic, s);
    }
    return s;
  };

  return (outcome: PublishOutcome, ackedAt: number): void => {
    // Published rows are contract topics only (publishBatch dead-letters the others): the map stays small.
    let last: { topic: string; n: number; s: Series } | undefined;
    for (const row of outcome.published) {
      if (last?.topic !== row.topic) {
        if (last) last.s.published.inc(last.n);
        last = { topic: row.topic, n: 0, s: seriesOf(row.topic) };
      }
      last.n += 1;
      last.s.latency.observe(Math.max(0, ackedAt - row.createdAtMs) / 1000);
    }
    if (last) last.s.published.inc(last.n);
    for (const { row, error } of outcome.deadLettered) {
      metrics.deadLetters.inc({ topic: topicLabel(row.topic) });
      log.error(
        { outbox_id: row.id, event_id: row.eventId, topic: row.topic, type: row.type, error },
        'outbox row rejected for good: dead-lettered',
      );
    }
  };
}
