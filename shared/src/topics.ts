/** The contract's topic names; a prefix (tests only) keeps parallel test files apart. */
export const TOPIC = {
  userEvents: 'accounts.user-events',
  mailRequests: 'mail.requests',
  mailDeliveryStatus: 'mail.delivery-status',
  mailRequestsDlq: 'mail.requests.dlq',
} as const;

export type TopicKey = keyof typeof TOPIC;
export type TopicNames = { readonly [K in TopicKey]: string };

export function topicNames(prefix = ''): TopicNames {
  return {
    userEvents: prefix + TOPIC.userEvents,
    mailRequests: prefix + TOPIC.mailRequests,
    mailDeliveryStatus: prefix + TOPIC.mailDeliveryStatus,
    mailRequestsDlq: prefix + TOPIC.mailRequestsDlq,
  };
}

/**
 * The four contract topics as every service creates them when missing (same partitions everywhere:
 * whichever service starts first creates them, and one user's key must map to one partition).
 * replicationFactor 0 follows the cluster (min(3, brokers)); see ensureTopics in kafka.ts.
 */
export function contractTopicConfigs(
  prefix: string,
  opts: { partitions: number; replicationFactor: number },
): { topic: string; numPartitions: number; replicationFactor: number }[] {
  return Object.values(topicNames(prefix)).map((topic) => ({
    topic,
    numPartitions: opts.partitions,
    replicationFactor: opts.replicationFactor,
  }));
}
