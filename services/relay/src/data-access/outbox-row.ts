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
  /** occurred_at as an ISO-8601 UTC timestamp, formatted by PostgreSQL (no Date round trip). */
  occurredAt: string;
  /** The payload's JSON text as stored (jsonb's canonical form): put into the envelope as it is, never parsed. */
  payloadJson: string;
  headers: Record<string, unknown>;
  /** When the row was inserted (PostgreSQL clock), for outbox_commit_to_publish_seconds. */
  createdAtMs: number;
};
