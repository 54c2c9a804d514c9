-- Up Migration

-- Outbox rows the broker rejected for good (e.g. larger than the topic's max message size). The relay
-- moves such a row here in the same transaction that deletes it from the outbox, so it neither stays
-- pending forever (keeping the outbox index hot) nor blocks the rows of its key behind it. Operators
-- inspect, fix and re-insert by hand; `error` is the broker's reason, never a secret.
CREATE TABLE outbox_dead_letters (
  outbox_id        bigint PRIMARY KEY,
  event_id         uuid NOT NULL UNIQUE,
  topic            text NOT NULL,
  key              text NOT NULL,
  type             text NOT NULL,
  version          integer NOT NULL,
  aggregate_type   text NOT NULL,
  occurred_at      timestamptz NOT NULL,
  payload          jsonb NOT NULL,
  headers          jsonb NOT NULL,
  created_at       timestamptz NOT NULL,
  error            text NOT NULL,
  dead_lettered_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX outbox_dead_letters_key_idx ON outbox_dead_letters (key, outbox_id);

-- Down Migration
DROP TABLE outbox_dead_letters;
