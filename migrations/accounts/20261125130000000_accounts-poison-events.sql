-- Up Migration

-- Messages the accounts consumers could not read (not JSON, wrong schema, too large), parked for an
-- operator before their offset is committed: the partition moves on and nothing is lost silently.
-- The value is kept as bytes (it may be any encoding, or hold NUL, which text cannot), at most
-- 64 KiB of it; value_bytes keeps the original size. (topic, partition, offset) makes a redelivery
-- after a crash between the insert and the offset commit a no-op.
CREATE TABLE accounts_poison_events (
  id          bigserial PRIMARY KEY,
  topic       text NOT NULL,
  partition   integer NOT NULL,
  "offset"    bigint NOT NULL,
  key         bytea,
  value       bytea CHECK (octet_length(value) <= 65536),
  value_bytes integer NOT NULL,
  error       text NOT NULL CHECK (length(error) <= 2000),
  received_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (topic, partition, "offset")
);

-- Down Migration
DROP TABLE accounts_poison_events;
