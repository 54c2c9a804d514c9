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
