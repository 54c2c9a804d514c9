/** One pending outbox row as the relay reads it. */
export type OutboxRow = {
  id: string;
  eventId: string;
  /** The contract's topic name, without the deployment's prefix. */
  topic: string;
  key: string;
  type: string;
  /** The Kafka value: the contract's envelope as JSON text, written by PostgreSQL in the claim. */
  value: string;
  headers: Readonly<Record<string, unknown>>;
  /** When the row was inserted (PostgreSQL clock), for outbox_commit_to_publish_seconds. */
  createdAtMs: number;
};
