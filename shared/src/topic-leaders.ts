import type { Admin } from 'kafkajs';
import { rootCause } from './kafka-errors';

/** The broker's answers that mean "created, but this broker does not know it (or its leader) yet". */
const NOT_YET = new Set(['UNKNOWN_TOPIC_OR_PARTITION', 'LEADER_NOT_AVAILABLE']);

/**
 * Waits until every partition of `topics` has a leader in a metadata answer. kafkajs'
 * `createTopics({ waitForLeaders: true })` gives up on the first UNKNOWN_TOPIC_OR_PARTITION, which a KRaft
 * broker answers for a moment after CreateTopics returned (its metadata image trails the controller's
 * commit; seen on a loaded machine). Only those "not yet" answers are waited out: any other error is thrown
 * at once, and at the deadline the error names the topics still without leaders and the last answer.
 */
export async function waitForTopicLeaders(
  admin: Pick<Admin, 'fetchTopicMetadata'>,
  topics: readonly string[],
  opts: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  let missing = [...topics];
  let last = 'no answer yet';
  for (;;) {
    try {
      const { topics: answered } = await admin.fetchTopicMetadata({ topics: [...topics] });
      const led = new Set(
        answered.filter((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0)).map((t) => t.name),
      );
      missing = topics.filter((t) => !led.has(t));
      if (missing.length === 0) return;
      last = 'partitions without a leader';
    } catch (err) {
      const root = rootCause(err);
      const type = root && typeof root === 'object' ? (root as { type?: unknown }).type : undefined;
      if (typeof type !== 'string' || !NOT_YET.has(type)) throw err;
      last = type;
    }
    if (Date.now() >= deadline) {
      throw new Error(`topics without leaders after ${timeoutMs} ms: ${missing.join(', ')} (last: ${last})`);
    }
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs ?? 100));
  }
}
