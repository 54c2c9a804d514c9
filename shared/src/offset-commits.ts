import type { Consumer } from 'kafkajs';
import { errorMessage } from './errors';
import type { Logger } from './logger';

/** How often a consumer commits the offsets it resolved (and once more when it stops). */
export const OFFSET_COMMIT_INTERVAL_MS = 1_000;

type Next = { topic: string; partition: number; offset: string };

export type OffsetCommitter = {
  /** For consumer.run: kafkajs' own commit after every batch is off. */
  runOptions: { autoCommit: false };
  /** Records a resolved offset: its message is durable (call it beside resolveOffset). */
  resolved: (topic: string, partition: number, offset: string) => void;
  /** Starts the periodic commits on a running consumer and follows its rebalances. */
  start: (consumer: Consumer) => void;
  /** Commits what is resolved and not yet committed, then stops the timer (call before disconnect). */
  stop: () => Promise<void>;
};

/**
 * Offset commits at most once per interval, instead of kafkajs' autoCommit, which sends an OffsetCommit
 * (a write to __consumer_offsets, replicated) after EVERY batch — at the rate registrations arrive, one
 * per message per consumer group, as many Kafka requests as the messages themselves.
 *
 * At-least-once is unchanged: an offset is only ever recorded here after its message is durable, so a
 * crash redelivers at most the last interval's messages, which every consumer of this project absorbs
 * (the mailer's inbox primary key, accounts' processed_events). After a rebalance, offsets of partitions
 * no longer ours are dropped: committing them late could move the new owner's committed offset back
 * (more redelivery, never a loss, but needless).
 */
export function createOffsetCommitter(opts: { logger: Logger; intervalMs?: number }): OffsetCommitter {
  const pending = new Map<string, Next>();
  let consumer: Consumer | undefined;
  let timer: NodeJS.Timeout | undefined;
  let flushing: Promise<void> = Promise.resolve();

  const commit = async (): Promise<void> => {
    if (!consumer || pending.size === 0) return;
    const batch = [...pending.values()];
    pending.clear();
    try {
      await consumer.commitOffsets(batch);
    } catch (err) {
      // Put back what no newer resolution replaced; the next tick (or stop) tries again.
      for (const entry of batch) {
        const id = `${entry.topic}:${entry.partition}`;
        if (!pending.has(id)) pending.set(id, entry);
      }
      opts.logger.debug({ err: { message: errorMessage(err) } }, 'offset commit failed; retried on the next tick');
    }
  };
  const flush = (): Promise<void> => (flushing = flushing.then(commit));

  return {
    runOptions: { autoCommit: false },
    resolved: (topic, partition, offset) => {
      pending.set(`${topic}:${partition}`, { topic, partition, offset: (BigInt(offset) + 1n).toString() });
    },
    start: (running) => {
      consumer = running;
      running.on(running.events.GROUP_JOIN, ({ payload }) => {
        const assigned = payload.memberAssignment;
        for (const [id, entry] of pending)
          if (!(assigned[entry.topic] ?? []).includes(entry.partition)) pending.delete(id);
      });
      timer = setInterval(() => void flush(), opts.intervalMs ?? OFFSET_COMMIT_INTERVAL_MS);
      timer.unref();
    },
    stop: async () => {
      clearInterval(timer);
      timer = undefined;
      await flush();
    },
  };
}
