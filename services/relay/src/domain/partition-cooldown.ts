import { backoffDelay, type BackoffPolicy } from '@shared/backoff';

/**
 * Partitions that failed recently (no leader, broker unreachable for them) and are left alone for a
 * backoff, so the rows of other partitions keep flowing: a partition that cannot be written stalls only
 * its own keys. Shared by the loops of one relay.
 */
export type PartitionCooldown = {
  coolingDown: (topic: string, partition: number) => boolean;
  failed: (topic: string, partition: number) => void;
  succeeded: (topic: string, partition: number) => void;
};

export function createPartitionCooldown(policy: BackoffPolicy, now: () => number = Date.now): PartitionCooldown {
  const state = new Map<string, { failures: number; until: number }>();
  const id = (topic: string, partition: number) => `${partition}:${topic}`;
  return {
    coolingDown: (topic, partition) => (state.get(id(topic, partition))?.until ?? 0) > now(),
    failed: (topic, partition) => {
      const failures = (state.get(id(topic, partition))?.failures ?? 0) + 1;
      state.set(id(topic, partition), { failures, until: now() + backoffDelay(failures, policy) });
    },
    succeeded: (topic, partition) => {
      state.delete(id(topic, partition));
    },
  };
}
