/** One pending outbox row as the relay reads it. */
export type OutboxRow = {
  id: string;
  eventId: string;
  /** The contract's topic name, without the deployment's prefix. */
  topic: string;
  key: string;
  type: string;
  version: number;
  aggregateType: string;
  occurredAt: Date;
  payload: unknown;
  headers: Record<string, unknown>;
  /** When the row was inserted (PostgreSQL clock), for outbox_commit_to_publish_seconds. */
  createdAtMs: number;
};
